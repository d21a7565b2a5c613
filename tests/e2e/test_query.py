"""`python -m pipelines.query` over what the pipeline wrote: `select sum(count) from latest` equals
the events the run decoded, after the default job, a session-window run and a streaming run with
early firings (each in every output format), read from a local directory, S3 (moto), GCS
(gcp-storage-emulator) and Azure Blob (Azurite). Each job runs once, locally; its files are then
copied byte for byte into each store, so the stores' runs differ only in where the reader finds
the files.

The early-firing runs stream on Prism from a live Kinesis stream (kinesalite) that the test feeds
while they run, so their output holds accumulating EARLY, ON_TIME and LATE panes of one group."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import fastavro
import orjson
import pytest

from pipelines import query
from tests.e2e.helpers import REPO, make_events, run_cli
from tests.e2e.streaming import StreamingRun, assert_stopped_cleanly, common_args, feed_while_running, wait_for_panes
from tests.reliability.helpers import kinesis_stream, put_kinesis
from transforms.formats import encode
from transforms.partition_paths import partition_segment

pytestmark = pytest.mark.integration

# Region values whose partition directories are percent-encoded (a '/', a '%', a '=').
HOSTILE_REGIONS = ("eu/west=1", "100% eu", "%2F")
MALFORMED = 4
FORMATS = ("jsonl", "parquet", "avro")


def _events_file(directory: Path) -> tuple[Path, int]:
    events = make_events(1500, seed=11)
    for i, event in enumerate(events[:30]):
        event["region"] = HOSTILE_REGIONS[i % len(HOSTILE_REGIONS)]
    lines = [orjson.dumps(e) for e in events] + [b'{"event_id": "broken", "value": '] * MALFORMED
    path = directory / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, len(events)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory, kinesis_service) -> dict[str, tuple[Path, int]]:
    """name -> (local output root, events decoded): one pipeline run each."""
    base = tmp_path_factory.mktemp("query")
    events, decoded = _events_file(base)
    source = f"file://{events}"
    runs = {
        # The default job (fixed 60 s windows, bounded) and a session-window job, in every format;
        # dead letters inside the root under `_dead_letter`, which the reader passes over.
        **{fmt: ("--source", source, "--output_format", fmt) for fmt in FORMATS},
        **{f"session-{fmt}": ("--source", source, "--output_format", fmt, "--window", "session:20")
           for fmt in FORMATS},
    }  # fmt: skip

    def run(name: str) -> subprocess.CompletedProcess:
        out = base / name
        return run_cli(*runs[name], "--output", str(out), "--dead_letter", str(out / "_dead_letter"))

    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(runs, pool.map(run, runs), strict=True))
    found = {}
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        dead_letters = (base / name / "_dead_letter").rglob("*")
        dead = sum(len(p.read_bytes().splitlines()) for p in dead_letters if p.is_file())
        assert dead == MALFORMED and f"events decoded    {decoded:>12,}" in result.stdout
        found[name] = (base / name, decoded)
    found.update(_early_pane_runs(base, kinesis_service))
    for root, _ in found.values():
        # A file that is no aggregate file, where an in-flight upload would be: never read.
        (root / ".tmp-upload-part.jsonl").write_bytes(b"not json\n")
    return found


def _early_pane_runs(base: Path, kinesis) -> dict[str, tuple[Path, int]]:
    """Streaming jobs on Prism with early firings, one per output format, all reading one live
    Kinesis stream that is fed while they run; each stopped with SIGINT once its panes are out."""
    client = kinesis.client()
    stream = kinesis_stream(client, 1, f"query-{uuid.uuid4().hex[:8]}")
    source = ["--source", f"kinesis://{stream}?region={kinesis.region}", "--kinesis_endpoint_url",
              kinesis.endpoint_url, "--kinesis_start_position", "TRIM_HORIZON", "--kinesis_poll_interval", "0.2"]
    outs = {fmt: base / f"early-{fmt}" for fmt in FORMATS}
    runs: dict[str, StreamingRun] = {}
    try:
        for fmt, out in outs.items():
            runs[fmt] = StreamingRun(kinesis.env(), [
                *common_args(out), "--output_format", fmt, "--dead_letter", str(out / "_dead_letter"), *source,
            ])
        fed = feed_while_running(list(runs.values()), lambda records: put_kinesis(client, stream, records))
        for fmt, run in runs.items():
            wait_for_panes(run, outs[fmt], fed)
        for fmt, run in runs.items():
            assert_stopped_cleanly(run, outs[fmt], fed)
    finally:
        for run in runs.values():
            run.kill()
    return {f"early-{fmt}": (out, len(fed)) for fmt, out in outs.items()}


def run_query(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
                "PYTHONPATH": str(REPO), **env}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "pipelines.query", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


SQL = (
    "select (select sum(count) from latest) as events, (select count(*) from aggregates) as panes, "
    "(select count(*) from latest) as groups, (select count(distinct region) from latest) as regions, "
    f"(select count(*) from latest where region in ({', '.join(repr(r) for r in HOSTILE_REGIONS)})) as hostile, "
    "(select count(*) from latest where dt <> left(window_start, 10) or hour <> substr(window_start, 12, 2)) "
    "as misplaced, (select count(*) from aggregates where pane = 'EARLY') as early"
)


def check_answers(answers: dict[str, str], outputs: dict[str, tuple[Path, int]]) -> None:
    """`answers`: the csv printed for SQL over each output."""
    for name, (_, decoded) in outputs.items():
        [row] = list(csv.DictReader(io.StringIO(answers[name])))
        assert int(row["events"]) == decoded, (name, row)
        assert int(row["panes"]) >= int(row["groups"]) > 0 and int(row["misplaced"]) == 0, (name, row)
        if name.startswith("early-"):  # several panes of one group, the latest counted once
            assert int(row["early"]) > 0 and int(row["panes"]) > int(row["groups"]), (name, row)
        else:  # the file source's events carry the hostile regions
            assert int(row["regions"]) == 2 + len(HOSTILE_REGIONS) and int(row["hostile"]) > 0, (name, row)


def check_store(env: dict[str, str], uri_of: Callable[[str], str], outputs, monkeypatch, capsys) -> None:
    """The command as a user types it, in a fresh process that has only `env` for the store, on
    the default job's output; then every output, through the same entry point in this process."""
    result = run_query(env, uri_of("jsonl"), "select sum(count) from latest")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[2].strip() == str(outputs["jsonl"][1])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    answers = {}
    for name in outputs:
        assert query.main([uri_of(name), SQL, "--format", "csv"]) == 0, capsys.readouterr().err
        answers[name] = capsys.readouterr().out
    check_answers(answers, outputs)


def upload(outputs: dict[str, tuple[Path, int]], put: Callable[[str, bytes], object]) -> None:
    """Every file of every output (dead letters and the stray temporary file included) to
    `agg/<output>/<path>` with the store's official client, a few at once."""
    files = {
        f"agg/{name}/{path.relative_to(root).as_posix()}": path.read_bytes()
        for name, (root, _) in outputs.items()
        for path in root.rglob("*")
        if path.is_file()
    }
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files, files.values()))


def test_file_store(outputs) -> None:
    # Every output through the command line, each query its own process (concurrently).
    def ask(name: str) -> str:
        result = run_query({}, f"file://{outputs[name][0]}", SQL, "--format", "csv")
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    with ThreadPoolExecutor(len(outputs)) as pool:
        check_answers(dict(zip(outputs, pool.map(ask, outputs), strict=True)), outputs)


def test_s3(moto_service, outputs, monkeypatch, capsys) -> None:
    s3 = moto_service.client("s3")
    bucket = f"query-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    upload(outputs, lambda key, data: s3.put_object(Bucket=bucket, Key=key, Body=data))
    # The endpoint reaches the reader through AWS_ENDPOINT_URL alone, as it reaches the sinks.
    check_store(moto_service.env(), lambda name: f"s3://{bucket}/agg/{name}", outputs, monkeypatch, capsys)


def test_gcs(gcs_service, outputs, monkeypatch, capsys) -> None:
    bucket = gcs_service.client().create_bucket(f"query-{uuid.uuid4().hex[:8]}")
    upload(outputs, lambda key, data: bucket.blob(key).upload_from_string(data))
    check_store(gcs_service.env(), lambda name: f"gs://{bucket.name}/agg/{name}", outputs, monkeypatch, capsys)


def test_azure_blob(azurite_service, outputs, monkeypatch, capsys) -> None:
    container = f"query-{uuid.uuid4().hex[:8]}"
    client = azurite_service.client().create_container(container)
    upload(outputs, client.upload_blob)
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_service.connection_string}
    uri = f"azfs://{azurite_service.account_name}/{container}/agg"
    check_store(env, lambda name: f"{uri}/{name}", outputs, monkeypatch, capsys)


# --- in-process: the latest pane, the chart and the errors -------------------------------------


def _record(region: str, pane: str, index: int, count: int) -> dict:
    return {"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:00Z", "region": region,
            "key": "k", "count": count, "sum": float(count), "min": 1.0, "max": 1.0, "mean": 1.0, "p50": 1.0,
            "p95": 1.0, "p99": 1.0, "distinct_ids": count, "pane": pane, "pane_index": index}  # fmt: skip


def test_latest_is_the_highest_pane_of_each_window_and_dimensions(tmp_path, capsys) -> None:
    # Accumulating panes in the sinks' layout and format, in an order that is not the panes' order.
    for pane, index, count in (("LATE", 2, 9), ("EARLY", 0, 3), ("ON_TIME", 1, 7)):
        for region, extra in (("eu/west", 0), ("us", 100)):
            directory = tmp_path / "dt=2026-01-01" / "hour=00" / partition_segment("region", region)
            directory.mkdir(parents=True, exist_ok=True)
            data = encode([_record(region, pane, index, count + extra)], "jsonl", ("region", "key"))
            (directory / f"part-{pane}-{index}.jsonl").write_bytes(data)
    assert (tmp_path / "dt=2026-01-01" / "hour=00" / "region=eu%2Fwest").is_dir()
    sql = "select region, pane, count from latest order by region"
    assert query.main([str(tmp_path), sql, "--format", "json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == [
        {"region": "eu/west", "pane": "LATE", "count": 9},
        {"region": "us", "pane": "LATE", "count": 109},
    ]
    assert query.main([str(tmp_path), "select count(*) as panes from aggregates"]) == 0
    assert capsys.readouterr().out.splitlines()[2].strip() == "6"


def test_plot_writes_a_png_of_the_top_values(outputs, tmp_path, capsys) -> None:
    chart = tmp_path / "charts" / "count.png"
    args = ["--plot", "count", "--top", "2", "--plot_by", "region", "--plot_out", str(chart)]
    assert query.main([str(outputs["parquet"][0]), *args]) == 0
    assert "count of the top 2 of 5 region values" in capsys.readouterr().out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plot", "p90"], "--plot 'p90' is not a metric; choose one of count, sum, min, max, mean, p50"),
        (["--plot", "p95", "--plot_by", "region"], "--plot p95 cannot be combined over key"),
        (["select nope from latest"], 'Referenced column "nope" not found'),
        (["select sum(count) from latest", "--s3_secret_access_key", "x"], "--s3_secret_access_key puts a credential"),
    ],
)
def test_errors_name_the_problem_and_the_fix(outputs, capsys, args, message) -> None:
    assert query.main([str(outputs["jsonl"][0]), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_no_files_under_the_uri(tmp_path, capsys) -> None:
    (tmp_path / "_dead_letter").mkdir()
    (tmp_path / "_dead_letter" / "part-1.jsonl").write_bytes(b'{"error": "x"}\n')
    assert query.main([str(tmp_path), "select 1"]) == 2
    err = capsys.readouterr().err
    assert "no aggregate rows under" in err and "1 other files passed over" in err


def test_every_query_option_is_documented() -> None:
    docs = (REPO / "docs" / "query.md").read_text()
    ours = [a.option_strings[0] for a in query.build_parser()._actions if a.option_strings and a.dest in query.OURS]
    assert ours and not [option for option in ours if option not in docs]


def test_empty_sql_is_refused_with_an_example(outputs, capsys) -> None:
    for sql in ("", "   ", "-- only a comment"):
        assert query.main([str(outputs["jsonl"][0]), sql]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "select * from latest limit 10" in err, sql


@pytest.mark.parametrize(("name", "data"), [
    ("part-x.jsonl", b'{"a": 1}\n'),
    ("part-x.avro", None),  # an Avro file of {"a": 1}
])  # fmt: skip
def test_a_file_without_the_aggregate_columns_is_named(tmp_path, capsys, name, data) -> None:
    if data is None:
        buffer = io.BytesIO()
        schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
        fastavro.writer(buffer, fastavro.parse_schema(schema), [{"a": 1}])
        data = buffer.getvalue()
    directory = tmp_path / "dt=2026-01-01" / "hour=00"
    directory.mkdir(parents=True)
    (directory / name).write_bytes(data)
    assert query.main([str(tmp_path), "select 1"]) == 2
    err = capsys.readouterr().err
    assert f"{name} is not an aggregate file: it has no window_start, window_end" in err


def test_a_missing_directory_is_named_as_such(tmp_path, capsys) -> None:
    assert query.main([str(tmp_path / "nope"), "select 1"]) == 2
    assert "nothing under" in capsys.readouterr().err


def test_files_of_two_runs_are_reported_and_latest_stays_the_same(outputs, tmp_path, capsys) -> None:
    # The default job's files, plus its rows again as another run with another shard count writes them.
    root = tmp_path / "two-runs"
    shutil.copytree(outputs["jsonl"][0], root)
    for path in list(root.rglob("part-*.jsonl")):
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        for row in rows:
            row["count"] += 1
        (path.parent / f"other-{path.name}").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    answers = set()
    for _ in range(3):
        assert query.main([str(root), "select sum(count) from latest", "--format", "csv"]) == 0
        out, err = capsys.readouterr()
        assert "keys have more than one row under" in err and "--window_shards" in err
        answers.add(out)
    groups = int(query.main([str(outputs["jsonl"][0]), "select count(*) from latest", "--format", "csv"]) == 0
                 and capsys.readouterr().out.splitlines()[1])  # fmt: skip
    assert answers == {f"sum(count)\n{outputs['jsonl'][1] + groups}\n"}  # the larger count each time
    assert query.main([str(outputs["jsonl"][0]), "select 1"]) == 0
    assert "warning" not in capsys.readouterr().err
