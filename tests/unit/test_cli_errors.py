"""Bad option values exit non-zero with one clear sentence, never a traceback."""

from __future__ import annotations

import pytest

from pipelines.run import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "fixed:abc"], "--window 'fixed:abc'"),
        (["--window", "tumbling:60"], "use fixed:60, sliding:300,60 or session:30"),
        (["--source", "ftp://host/file"], "Unknown source scheme 'ftp'"),
        (["--source", "file:///definitely/missing/*.jsonl"], "no file matches"),
        (["--max_records", "0"], "--max_records 0 must be positive"),
        (["--output", "ftp://x/y"], "Unknown --output scheme 'ftp'"),
        (["--dimensions", " , "], "--dimensions is empty"),
        (["--dimensions", "region,count"], "output fields"),
        (["--allowed_lateness", "-1"], "negative"),
        (["--early_firing", "0"], "--early_firing 0 must be a positive"),
        (["--source", "synthetic://?events=ten"], "must be a whole number"),
        (["--avro_schema", "/missing.avsc"], "--avro_schema '/missing.avsc' cannot be read"),
    ],
)
def test_bad_values_exit_2_with_one_sentence(args, message, capsys, tmp_path):
    assert main([*args, "--output", str(tmp_path)] if "--output" not in args else args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 0


@pytest.mark.parametrize("args", [["--input_format", "xml"], ["--output_format", "csv"], ["--early_firing", "x"]])
def test_argparse_rejects_bad_choices(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--source", "--input_format", "--window", "--allowed_lateness", "--early_firing", "--output",
                   "--output_format", "--dead_letter", "--dimensions", "--event_time_field", "--max_records"):
        assert option in text
