"""Bad option values exit non-zero with one clear sentence, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.run import main

REPO = Path(__file__).resolve().parents[2]


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
        (["--dimensions", "region,dt"], "--dimensions uses dt, which the output's partition directories"),
        (["--dimensions", "hour,key"], "--dimensions uses hour, which the output's partition directories"),
        (["--allowed_lateness", "-1"], "negative"),
        (["--early_firing", "0"], "--early_firing 0 must be a positive"),
        (["--source", "synthetic://?events=ten"], "must be a whole number"),
        (["--avro_schema", "/missing.avsc"], "--avro_schema '/missing.avsc' cannot be read"),
        (["--dimensions", "region,__v_sum"], "which the aggregation uses for its own columns"),
        (["--event_time_field", ""], "--event_time_field is empty"),
        (["--value_field", " "], "--value_field is empty"),
        (["--dimensions", "region,my-key", "--output_format", "avro"], "Avro field names are letters, digits"),
        (["--source", "eventhubs://ns/hub?consumer_group=g"], "is a stream with no end"),
        (["--source", "kinesis://s?region=us-east-1"], "--max_read_time or --kinesis_read_to_latest"),
        (["--source", "pubsub://projects/p/subscriptions/s"], "--pubsub_stop_when_idle, or add --streaming"),
        (["--streaming", "--allowed_lateness", "1e16"], "over the limit of 31622400 s"),
        (["--early_firing", "99999999999999999999"], "must be a positive number of seconds up to 31622400"),
        (["--source", "eventhubs://ns/hub", "--max_records", "5", "--eventhubs_connect_timeout", "-1"],
         "--eventhubs_connect_timeout -1.0 must be a positive number of seconds"),
        (["--source", "kinesis://s?region=us-east-1", "--max_records", "5", "--kinesis_poll_interval", "nan"],
         "--kinesis_poll_interval nan must be a positive number of seconds up to 3600"),
        (["--source", "kinesis://s?region=us-east-1", "--max_records", "5", "--kinesis_endpoint_url", "not a url"],
         "is not an http(s) URL"),
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


# --------------------------------------------------------------------------- checked before any work

SOURCE = "synthetic://?events=50&seed=1"


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Runs the CLI, asserts exit 2 with one sentence and no traceback, returns that sentence."""
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0, err
    assert "Traceback" not in err and "Reading " not in err and captured.out == ""
    return err


def _nothing_written(root: Path, *allowed: str) -> None:
    assert sorted(p.name for p in root.iterdir()) == sorted(allowed)


def test_output_that_is_an_existing_file_is_refused(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("keep me")
    err = _refused(["--source", SOURCE, "--output", str(target)], capsys)
    assert f"--output {str(target)!r} is an existing file" in err and "give a directory" in err
    assert target.read_text() == "keep me"
    _nothing_written(tmp_path, "afile")


@pytest.mark.parametrize("option", ["--output", "--dead_letter"])
def test_sink_under_a_file_is_refused(option, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    args = ["--source", SOURCE, "--output", str(tmp_path / "out"), option, str(tmp_path / "afile" / "sub")]
    err = _refused(args, capsys)
    assert f"{option} {str(tmp_path / 'afile' / 'sub')!r} cannot be created" in err
    assert "is a file, not a directory; choose a path under a directory" in err
    _nothing_written(tmp_path, "afile")


@pytest.mark.parametrize("option", ["--output", "--dead_letter"])
def test_sink_where_no_file_can_be_created_is_refused(option, tmp_path, capsys):
    # /proc refuses new files even to root, which ignores mode bits.
    assert Path("/proc/self").is_dir()
    err = _refused(["--source", SOURCE, "--output", str(tmp_path / "out"), option, "/proc/analytics-out"], capsys)
    assert f"{option} '/proc/analytics-out' is not writable: no file can be created in '/proc'" in err
    assert "choose a writable directory" in err
    _nothing_written(tmp_path)


def test_writable_sink_check_leaves_no_file_behind(tmp_path, capsys):
    # The probe file is removed, and an invalid option after it still stops the run unwritten.
    err = _refused(["--source", SOURCE, "--output", str(tmp_path), "--max_records", "0"], capsys)
    assert "--max_records 0" in err
    _nothing_written(tmp_path)


def test_source_directory_needs_a_glob(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"event_time": 0, "value": 1}\n')
    err = _refused(["--source", f"file://{tmp_path}/in", "--output", str(tmp_path / "out")], capsys)
    assert f"--source 'file://{tmp_path}/in' is a directory" in err
    assert f"e.g. file://{tmp_path}/in/*.jsonl" in err
    _nothing_written(tmp_path, "in")


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("fixed:nan", "size 'nan' is not a finite number of seconds"),
        ("fixed:inf", "size 'inf' is not a finite number of seconds"),
        ("session:-inf", "gap '-inf' is not a finite number of seconds"),
        ("fixed:1e12", "size 1e+12 s is over the limit of 31622400 s (366 days)"),
        ("sliding:1e12,60", "over the limit of 31622400 s (366 days)"),
        ("sliding:600,nan", "period 'nan' is not a finite number"),
        ("fixed:0", "size '0' must be at least 0.001 seconds"),
        ("fixed:-60", "size '-60' must be at least 0.001 seconds"),
        ("sliding:86400,1", "puts each event in 86,400 windows, over the limit of 10,000"),
    ],
)
def test_window_sizes_must_be_finite_and_sane(window, message, tmp_path, capsys):
    err = _refused(["--source", SOURCE, "--window", window, "--output", str(tmp_path / "out")], capsys)
    assert f"--window {window!r}" in err and message in err
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("kinesis://s?region=us-east-1&shard=1", "unknown parameter 'shard'; it accepts only region="),
        ("eventhubs://ns/hub?consumer_group=g&partition=0",
         "unknown parameter 'partition'; it accepts only consumer_group="),
        ("pubsub://projects/p/subscriptions/s?max=5", "unknown parameter 'max'; it takes none"),
        ("synthetic://?events=10&evnets=5&sed=1", "unknown parameters 'evnets', 'sed'; it accepts only events=, keys="),
    ],
)
def test_unknown_uri_parameters_are_named(source, message, tmp_path, capsys):
    err = _refused(["--source", source, "--output", str(tmp_path / "out")], capsys)
    assert f"--source {source!r}: {message}" in err and "remove or correct" in err
    _nothing_written(tmp_path)


def test_sink_uri_parameters_are_refused(tmp_path, capsys):
    err = _refused(["--source", SOURCE, "--output", "s3://bucket/agg?region=eu-west-1"], capsys)
    assert "--output 's3://bucket/agg?region=eu-west-1': unknown parameter 'region'; sink URIs take none" in err


@pytest.mark.parametrize("option", ["--output", "--dead_letter", "--source"])
def test_file_uri_with_a_host_is_refused_with_both_spellings(option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {"--source": SOURCE, "--output": "out", option: "file://rel/x"}
    err = _refused([a for pair in args.items() for a in pair], capsys)
    assert f"{option} 'file://rel/x' names the host 'rel'" in err
    assert "write file:///absolute/path with three slashes, or the relative path 'rel/x' without file://" in err
    _nothing_written(tmp_path)
    assert not Path("/rel").exists()


def test_file_uri_localhost_and_relative_paths_work(tmp_path, monkeypatch):
    from io_connectors.uri import parse_sink, parse_source

    monkeypatch.chdir(tmp_path)
    assert parse_sink("file://localhost/data/out").path == "/data/out"
    assert parse_sink("rel/x").path == str(tmp_path / "rel" / "x")
    # In a file:// source '?' is the glob wildcard, not a query.
    assert parse_source("file:///data/part-?.jsonl").location == "/data/part-?.jsonl"


# --------------------------------------------------------------------------- secrets

@pytest.mark.parametrize(
    ("option", "fix"),
    [
        ("--s3_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("--s3_access_key_id", "AWS_ACCESS_KEY_ID"),
        ("--s3_session_token", "AWS_SESSION_TOKEN"),
        ("--azure_connection_string", "export AZURE_STORAGE_CONNECTION_STRING instead"),
        ("--kafka_password", "through the environment or a credential file"),
    ],
)
def test_secrets_on_the_command_line_are_refused(option, fix, tmp_path, capsys):
    secret = "S3cr3tValue42"
    err = _refused(["--source", SOURCE, "--output", str(tmp_path / "out"), option, secret], capsys)
    assert err.startswith(f"error: {option} ") and fix in err
    assert secret not in err
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--blob_service_endpoint", "https://acct.blob.core.windows.net/?sv=2024&sig=S3cr3tValue42"),
        ("--s3_endpoint_url", "http://user:S3cr3tValue42@127.0.0.1:9000"),
        ("--source", "eventhubs://ns/hub?consumer_group=g;SharedAccessKey=S3cr3tValue42"),
    ],
)
def test_credentials_inside_option_values_are_refused(option, value, tmp_path, capsys):
    args = ["--source", SOURCE, "--output", str(tmp_path / "out")]
    err = _refused([*args, option, value] if option != "--source" else [*args[2:], option, value], capsys)
    assert err.startswith(f"error: {option} ") and "carries a credential" in err
    assert "S3cr3tValue42" not in err and "***" in err
    _nothing_written(tmp_path)


def test_options_naming_where_a_secret_is_are_accepted():
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.sink_options import check_sink_options

    check_sink_options(PipelineOptions(["--eventhubs_connection_string_env", "MY_HUB", "--s3_endpoint_url", "x"]))


@pytest.mark.parametrize(
    "source",
    [
        "kinesis://AKIAEXAMPLE:S3cr3tValue42@clicks?region=us-east-1",
        "eventhubs://S3cr3tValue42@ns/hub",
        "eventhubs://ns/hub?consumer_group=g&password=S3cr3tValue42",
        "eventhubs://ns/hub?connection_string=Endpoint%3Dsb%3A%2F%2Fns%2F%3BSharedAccessKey%3DS3cr3tValue42",
        "synthetic://?events=10&sv=2024&sig=S3cr3tValue42",
        "file:///data/x.jsonl?sig=S3cr3tValue42",
    ],
)
def test_secrets_in_a_source_uri_never_reach_the_terminal(source, tmp_path, capsys):
    err = _refused(["--source", source, "--output", str(tmp_path / "out")], capsys)
    assert "***" in err and "S3cr3tValue42" not in err
    _nothing_written(tmp_path)


def test_secrets_in_a_sink_uri_never_reach_the_terminal(tmp_path, capsys):
    for sink in ("azfs://acct/cont/agg?sv=2024&sig=S3cr3tValue42", "s3://AKIAEXAMPLE:S3cr3tValue42@bucket/agg"):
        err = _refused(["--source", SOURCE, "--output", sink], capsys)
        assert "***" in err and "S3cr3tValue42" not in err


def test_reading_line_redacts_the_source(tmp_path):
    from dataclasses import replace

    from io_connectors.uri import SourceSpec
    from pipelines.run import parse_options, prepare_job, reading_line

    config = prepare_job(parse_options(["--source", SOURCE, "--output", str(tmp_path / "out")]))
    for uri in ("eventhubs://listen:S3cr3tValue42@ns/hub?consumer_group=g",
                "eventhubs://ns/hub?consumer_group=g&SharedAccessSignature=S3cr3tValue42&token=S3cr3tValue42"):
        line = reading_line(replace(config, source=SourceSpec("eventhubs", "ns/hub", {}, uri)))
        assert line.startswith("Reading eventhubs://") and "***" in line and "S3cr3tValue42" not in line
    assert reading_line(config).startswith(f"Reading {SOURCE} (json), windows fixed:60, writing jsonl to ")


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("kinesis://user:pw@s?region=eu-west-1", "kinesis://user:***@s?region=eu-west-1"),
        ("eventhubs://tok@ns/h", "eventhubs://***@ns/h"),
        ("azfs://a/c/p?sv=2024-01-01&se=x&sig=abc%3D&token=t", "azfs://a/c/p?sv=2024-01-01&se=x&sig=***&token=***"),
        ("x://h/p?SharedAccessKey=k&Password=p&api_key=q&keys=50", "x://h/p?SharedAccessKey=***&Password=***&api_key=***&keys=50"),
        ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=abc=",
         "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=***"),
        ("synthetic://?events=10&keys=5&seed=1", "synthetic://?events=10&keys=5&seed=1"),
    ],
)
def test_redact_uri(uri, shown):
    from io_connectors.uri import redact_uri

    assert redact_uri(uri) == shown


def test_cli_process_exits_2_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--source", "kinesis://s?region=us-east-1&shard=1",
         "--output", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --source 'kinesis://s?region=us-east-1&shard=1': unknown parameter 'shard'; it accepts only "
        "region=, so remove or correct it."
    )
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "kinesis://s?region=us-east-1", "--kinesis_start_position", "AT_TIMESTAMP"],
         "--kinesis_start_position AT_TIMESTAMP needs --kinesis_start_timestamp"),
        (["--source", "kinesis://s"], "--source 'kinesis://s' names no region; write kinesis://s?region=us-east-1"),
        (["--source", "pubsub://projects/p/subscriptions/s", "--pubsub_ack_deadline", "5"],
         "--pubsub_ack_deadline 5 must be between 10 and 600 seconds"),
        (["--source", "eventhubs://ns/hub", "--eventhubs_batch_size", "0"],
         "--eventhubs_batch_size must be at least 1"),
        (["--source", SOURCE, "--pubsub_dead_letter_topic", "projects/p/subscriptions/s"], "names a subscription"),
    ],
)
def test_connector_option_problems_exit_2_before_reading(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    err = _refused([*args, "--max_records", "10", "--output", str(tmp_path / "out")], capsys)
    assert message in err
    _nothing_written(tmp_path)
