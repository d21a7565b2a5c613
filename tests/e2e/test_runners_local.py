"""The CLI on Beam's local portable runner: Prism started by Beam (PrismRunner) and Prism started here
as a job server (PortableRunner) write the same aggregates, dead letters and summary as the DirectRunner.

Prism is the binary `make install` puts in .cache/runners/bin; without it these tests fail with the
profile's message naming `make install`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pipelines.options import DEFAULT_SOURCE
from runners.prism import installed_binary
from tests.e2e.helpers import (
    MALFORMED,
    REPO,
    check_against_expected,
    expected_aggregates,
    make_events,
    read_aggregates,
    run_cli,
)
from tests.services._base import LocalProcess, free_port, tcp_probe

SYNTHETIC = "synthetic://?events=20000&keys=20&seed=7"
SUMMARY_LINE = re.compile(r"^(records read|events decoded|dead letters|windows|aggregates)\s+([\d,]+)", re.M)
# Float sums depend on the order partial aggregates are merged in, which is each runner's own.
ORDER_DEPENDENT = ("sum", "mean")


def summary(stdout: str) -> dict[str, int]:
    """The counters of the CLI's summary, e.g. {"records read": 20000, ...}, and the number of files."""
    counters = {name: int(value.replace(",", "")) for name, value in SUMMARY_LINE.findall(stdout)}
    files = re.search(r"in ([\d,]+) \w+ files", stdout)
    counters["files"] = int(files[1].replace(",", "")) if files else -1
    return counters


def by_group(records: list[dict]) -> dict[tuple, dict]:
    grouped = {(r["window_start"], r["window_end"], r["region"], r["key"]): r for r in records}
    assert len(grouped) == len(records), "an aggregate was written twice"
    return grouped


def assert_same_aggregates(out: Path, reference: Path) -> None:
    """Every aggregate field equal, panes included; sum and mean to 1e-12 (merge order)."""
    got, want = by_group(read_aggregates(out, "jsonl")), by_group(read_aggregates(reference, "jsonl"))
    assert want and set(got) == set(want)
    for group, expected in want.items():
        row = got[group]
        assert set(row) == set(expected), group
        for field, value in expected.items():
            if field in ORDER_DEPENDENT:
                assert row[field] == pytest.approx(value, rel=1e-12), (group, field)
            else:
                assert row[field] == value, (group, field)


def dead_letters(out: Path) -> Path:
    return out.with_name(out.name + "_dead_letter")


def dead_letter_sources(out: Path) -> list[str]:
    return sorted(
        orjson.loads(line)["source"]
        for path in dead_letters(out).rglob("*part-*")
        for line in path.read_bytes().splitlines()
    )


def run_ok(out: Path, *args: str) -> dict[str, int]:
    """The CLI's summary of a job writing aggregates to `out` and dead letters to `dead_letters(out)`."""
    result = run_cli(*args, "--output", str(out), "--dead_letter", str(dead_letters(out)))
    assert result.returncode == 0, result.stderr
    return summary(result.stdout)


@pytest.fixture(scope="module")
def prism() -> Path:
    return installed_binary()  # ProfileError (naming `make install`) when Prism is missing


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("direct") / "out"
    return out, run_ok(out, "--source", SYNTHETIC)


@pytest.fixture(scope="module")
def prism_job_server(prism: Path) -> Iterator[str]:
    port = free_port()
    server = LocalProcess(
        "prism", [str(prism), "--job_port", str(port), "--serve_http=false", "--log_level", "warn"], tcp_probe(port)
    )
    server.start()
    try:
        yield f"localhost:{port}"
    finally:
        server.close()


def test_prism_runner_writes_what_the_direct_runner_writes(prism, direct_run, tmp_path):
    reference, direct_summary = direct_run
    out = tmp_path / "out"
    counters = run_ok(out, "--runner", "PrismRunner", "--source", SYNTHETIC)
    # Metrics come back through the portable job service: the same real numbers as the DirectRunner's.
    assert counters == direct_summary
    assert counters["records read"] == 20_000 and counters["dead letters"] > 0 and counters["aggregates"] > 0
    assert_same_aggregates(out, reference)
    assert dead_letter_sources(out) == dead_letter_sources(reference)


def test_portable_runner_on_a_prism_job_server(prism_job_server, direct_run, tmp_path):
    reference, direct_summary = direct_run
    out = tmp_path / "out"
    counters = run_ok(out, "--runner", "PortableRunner", "--job_endpoint", prism_job_server, "--source", SYNTHETIC)
    assert counters == direct_summary
    assert_same_aggregates(out, reference)


def test_prism_session_windows_equal_the_direct_runner(prism, tmp_path):
    source = "synthetic://?events=5000&keys=10&seed=11"
    direct = run_ok(tmp_path / "direct", "--source", source, "--window", "session:30")
    counters = run_ok(tmp_path / "prism", "--runner", "PrismRunner", "--source", source, "--window", "session:30")
    assert counters == direct and counters["windows"] > 0
    assert_same_aggregates(tmp_path / "prism", tmp_path / "direct")


def test_prism_reads_files_and_writes_dead_letters(prism, tmp_path):
    events = make_events(4_000, seed=5)
    lines = [orjson.dumps(e) for e in events]
    for i, bad in enumerate(MALFORMED):
        lines.insert(500 * (i + 1), bad)
    bad_lines = sorted(number for number, line in enumerate(lines, start=1) if line in MALFORMED)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    counters = run_ok(out, "--runner", "PrismRunner", "--source", f"file://{path}")
    assert counters["records read"] == len(lines) and counters["dead letters"] == len(MALFORMED)
    check_against_expected(read_aggregates(out, "jsonl"), expected_aggregates(events))
    assert sorted(int(source.rsplit(":", 1)[1]) for source in dead_letter_sources(out)) == bad_lines


def test_default_job_runs_on_prism_with_no_other_flag(prism, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--runner", "PrismRunner"], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    counters = summary(result.stdout)
    events = int(re.search(r"events=(\d+)", DEFAULT_SOURCE)[1])
    assert counters["records read"] == events
    assert counters["events decoded"] + counters["dead letters"] == events and counters["dead letters"] > 0
    assert counters["aggregates"] == len(read_aggregates(tmp_path / "output", "jsonl")) > 0
