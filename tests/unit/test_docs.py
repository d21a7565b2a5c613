"""The documentation matches the code: every CLI option is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.options import add_all_arguments

REPO = Path(__file__).resolve().parents[2]


def test_every_option_is_documented():
    parser = argparse.ArgumentParser()
    add_all_arguments(parser)
    options = {s for action in parser._actions for s in action.option_strings if s.startswith("--")}
    docs = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    missing = sorted(o for o in options if o not in docs and o != "--help")
    assert not missing, f"options missing from README.md and docs/: {missing}"


def test_readme_quickstart_commands_exist_in_makefile():
    makefile = (REPO / "Makefile").read_text()
    assert "\nrun:" in makefile and "\ntest:" in makefile
    assert "make test" in (REPO / ".ci" / "run").read_text()
