"""`python -m pipelines.compact` over what the pipeline wrote: a query gives the same rows before and
after compaction on a local directory, S3 (moto), GCS (gcp-storage-emulator) and Azure Blob
(Azurite), in jsonl, parquet and avro; a `latest` query looping in a thread during compaction never
sees a group missing or doubled; a second run changes nothing; a run stopped between its writes and
its deletes is completed by the next one. One small job per format runs once; each test copies its
files (plus a LATE pane file per partition, a partition of the current hour that is not closed, and a
writer's temporary file) to where it compacts them. Queries run through pipelines.query (DuckDB over
files read with fsspec, independently of the compaction code); listings and bytes are compared with
each store's own client."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import fastavro
import orjson
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.compact import compact
from pipelines.query import connect
from pipelines.query_sources import QueryError, load_aggregates
from tests.e2e.helpers import REPO, run_cli
from transforms.formats import EXTENSIONS, encode
from transforms.partition_paths import partition_segment

pytestmark = pytest.mark.integration

FORMATS = ("jsonl", "parquet", "avro")
DIMS = ("region", "key")
LATE_GROUPS = 5  # groups per closed partition given a LATE pane (pane_index 1) with one more event
# Two hours of event time (2026-01-01 00:00-02:00): closed partitions of 3 regions x 2 hours, 4 files each.
SOURCE = "synthetic://?events=3000&keys=12&batch=250&span=7200&late=0"
WRITER_TEMP = ".tmp-0123456789abcdef0123456789abcdef-part-s000of004"
HOSTILE_REGION = "eu/west=1 100%"
OWN_TEMP = ".tmp-fedcba9876543210fedcba9876543210-part-compacted-0000"


# --- reading a table independently of the compaction code -------------------------------------


def decode_rows(name: str, data: bytes) -> list[dict[str, Any]]:
    if name.endswith(".jsonl"):
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()
    return list(fastavro.reader(io.BytesIO(data)))


def is_table_file(relative: str) -> bool:
    parts = relative.split("/")
    return not any(p.startswith(("_", ".")) for p in parts) and parts[-1].rpartition(".")[2] in EXTENSIONS


def query(uri: str) -> dict[str, Any]:
    """Through pipelines.query: `aggregates` (every row, with dt and hour) and `latest` (one row per
    window and dimensions, the highest pane_index, as the Athena/BigQuery/Synapse views define it)
    as sorted row lists, sum(count) of latest, and sum(count) of the first panes."""
    table, dimensions = load_aggregates(uri, PipelineOptions([]))
    con = connect(table, dimensions)
    return {
        "aggregates": con.execute("SELECT * FROM aggregates ORDER BY ALL").fetchall(),
        "latest": con.execute("SELECT * FROM latest ORDER BY ALL").fetchall(),
        "events": con.execute("SELECT sum(count) FROM latest").fetchone()[0],
        "first_panes": con.execute("SELECT sum(count) FROM aggregates WHERE pane_index = 0").fetchone()[0],
    }


def local_uri(root: Path) -> str:
    return f"file://{root}"


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- one job per format, with a LATE pane file, an open partition and a writer's temporary file --


def _extra_files(root: Path, fmt: str) -> None:
    ext = EXTENSIONS[fmt]
    for directory in sorted({p.parent for p in root.glob(f"dt=*/hour=*/region=*/*.{ext}")}):
        first = sorted(directory.glob(f"*.{ext}"))[0]
        rows = decode_rows(first.name, first.read_bytes())[:LATE_GROUPS]
        late = [{**r, "count": r["count"] + 1, "sum": r["sum"] + 1.0, "pane": "LATE", "pane_index": 1} for r in rows]
        (directory / f"part-late.{ext}").write_bytes(encode(late, fmt, DIMS))
    # A percent-encoded partition value ('/', '=', '%' escaped in the path), in two files.
    hostile = decode_rows(first.name, first.read_bytes())[LATE_GROUPS : 2 * LATE_GROUPS]
    hostile = [{**r, "region": HOSTILE_REGION} for r in hostile]
    escaped = directory.parent / partition_segment("region", HOSTILE_REGION)
    escaped.mkdir()
    for half in range(2):
        (escaped / f"part-s{half:03d}of002.{ext}").write_bytes(encode(hostile[half::2], fmt, DIMS))
    # A writer's in-flight file in a closed partition: never read, never touched.
    (directory / f"{WRITER_TEMP}.{ext}").write_bytes(b"in flight")
    # The current hour: not closed, so left as it is however many files it has.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    opened = root / partition_segment("dt", start[:10]) / partition_segment("hour", start[11:13]) / "region=eu-west-1"
    opened.mkdir(parents=True)
    for shard in range(2):
        row = {"window_start": start, "window_end": start, "region": "eu-west-1", "key": f"open{shard}"}
        row.update(count=1, sum=1.0, min=1.0, max=1.0, mean=1.0, p50=1.0, p95=1.0, p99=1.0, distinct_ids=1)
        row.update(pane="EARLY", pane_index=0)
        (opened / f"part-s{shard:03d}of002.{ext}").write_bytes(encode([row], fmt, DIMS))


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("compact-jobs")

    def run(fmt: str) -> subprocess.CompletedProcess:
        out = base / fmt
        return run_cli("--source", SOURCE, "--output_format", fmt, "--output", str(out),
                       "--dead_letter", str(out / "_dead_letter"))  # fmt: skip

    with ThreadPoolExecutor(len(FORMATS)) as pool:
        results = dict(zip(FORMATS, pool.map(run, FORMATS), strict=True))
    for fmt, result in results.items():
        assert result.returncode == 0, f"{fmt}: {result.stderr[-3000:]}"
        _extra_files(base / fmt, fmt)
    return {fmt: base / fmt for fmt in FORMATS}


@pytest.fixture
def copies(jobs, tmp_path) -> dict[str, Path]:
    """A private copy of each job's output, to compact."""
    return {fmt: Path(shutil.copytree(root, tmp_path / fmt)) for fmt, root in jobs.items()}


def closed_partitions(files: dict[str, bytes]) -> set[str]:
    this_hour = partition_segment("hour", datetime.now(UTC).strftime("%H"))
    return {k.rpartition("/")[0] for k in files if is_table_file(k) and f"/{this_hour}/" not in f"/{k}"}


def check_compacted(before: dict[str, bytes], after: dict[str, bytes], fmt: str) -> None:
    """Each closed partition is one compacted file; everything else is byte for byte as it was."""
    closed = closed_partitions(before)
    assert len(closed) >= 6
    ext = EXTENSIONS[fmt]
    for partition in closed:
        names = [k.rpartition("/")[2] for k in after if k.startswith(partition + "/") and is_table_file(k)]
        assert len(names) == 1 and names[0].startswith("part-compacted-") and names[0].endswith(f"-001of001.{ext}")
    untouched = {k: v for k, v in before.items() if not is_table_file(k) or k.rpartition("/")[0] not in closed}
    assert {k: after.get(k) for k in untouched} == untouched
    assert not [k for k in after if "_compaction.json" in k]


# --- stores -------------------------------------------------------------------------------------


class Store:
    """One test prefix in a store: the URI to compact, and put/list with the store's own client."""

    def __init__(
        self, uri: str, env: dict[str, str], put: Callable, files: Callable, holds: Callable[[str], bool] = bool
    ) -> None:
        self.uri, self.env, self.put, self.files, self.holds = uri, env, put, files, holds


def _s3(service: Any) -> Store:  # noqa: ANN401
    s3 = service.client("s3")
    bucket = f"compact-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)

    def files() -> dict[str, bytes]:
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])]  # fmt: skip
        return {k[len("agg/") :]: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    def put(key: str, data: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=f"agg/{key}", Body=data)

    return Store(f"s3://{bucket}/agg", service.env(), put, files)


def _gcs(service: Any) -> Store:  # noqa: ANN401
    client = service.client()
    bucket = client.create_bucket(f"compact-{uuid.uuid4().hex[:8]}")

    def files() -> dict[str, bytes]:
        return {b.name[len("agg/") :]: b.download_as_bytes() for b in client.list_blobs(bucket, prefix="agg/")}

    def put(key: str, data: bytes) -> None:
        bucket.blob(f"agg/{key}").upload_from_string(data)

    # gcp-storage-emulator answers 404 to a download by generation (as Beam's GcsIO and the client's
    # listed blobs read) of a name holding a %-escape, so the percent-encoded partition stays out here.
    return Store(f"gs://{bucket.name}/agg", service.env(), put, files, holds=lambda key: "%" not in key)


def _azure(service: Any) -> Store:  # noqa: ANN401
    name = f"compact-{uuid.uuid4().hex[:8]}"
    container = service.client().create_container(name)

    def files() -> dict[str, bytes]:
        blobs = container.list_blobs(name_starts_with="agg/")
        return {b.name[len("agg/") :]: container.download_blob(b.name).readall() for b in blobs}

    def put(key: str, data: bytes) -> None:
        container.upload_blob(f"agg/{key}", data)

    env = {"AZURE_STORAGE_CONNECTION_STRING": service.connection_string}
    return Store(f"azfs://{service.account_name}/{name}/agg", env, put, files)


def _compact_everywhere(store: Callable[[], Store], jobs: dict[str, Path], monkeypatch) -> None:
    for fmt, root in jobs.items():
        target = store()
        local = {k: v for k, v in local_files(root).items() if target.holds(k)}
        for key, data in local.items():
            target.put(key, data)
        before = target.files()
        assert before == local
        for name, value in target.env.items():
            monkeypatch.setenv(name, value)
        expected = query(target.uri)
        summary = compact(target.uri, PipelineOptions([]))
        after = target.files()
        assert not summary.failed and summary.compacted == len(closed_partitions(before)), (fmt, summary)
        check_compacted(before, after, fmt)
        assert query(target.uri) == expected, fmt
        # Idempotent: a second run writes, deletes and rewrites nothing.
        again = compact(target.uri, PipelineOptions([]))
        assert again.compacted == 0 and again.already == summary.compacted and target.files() == after, fmt


def test_file_store(copies) -> None:
    for fmt, root in copies.items():
        before = local_files(root)
        expected = query(local_uri(root))
        summary = compact(local_uri(root), PipelineOptions([]))
        after = local_files(root)
        assert summary.compacted == len(closed_partitions(before)) and summary.open == 1 and not summary.failed
        assert summary.files_in == sum(len([k for k in before if k.startswith(p + "/") and is_table_file(k)])
                                       for p in closed_partitions(before))  # fmt: skip
        check_compacted(before, after, fmt)
        assert any("%25" in p for p in closed_partitions(before)), "a percent-encoded partition was compacted"
        assert query(local_uri(root)) == expected
        # The LATE panes are what latest shows, one more event each.
        late_files = len([k for k in before if k.endswith(f"/part-late.{EXTENSIONS[fmt]}")])
        assert expected["events"] == expected["first_panes"] + LATE_GROUPS * late_files > expected["first_panes"]
        again = compact(str(root), PipelineOptions([]))
        assert again.compacted == 0 and local_files(root) == after, fmt


def test_s3(moto_service, jobs, monkeypatch) -> None:
    _compact_everywhere(lambda: _s3(moto_service), jobs, monkeypatch)


def test_gcs(gcs_service, jobs, monkeypatch) -> None:
    _compact_everywhere(lambda: _gcs(gcs_service), jobs, monkeypatch)


def test_azure_blob(azurite_service, jobs, monkeypatch) -> None:
    _compact_everywhere(lambda: _azure(azurite_service), jobs, monkeypatch)


# --- atomicity, stopped runs, parts ---------------------------------------------------------------


class QueryLoop(threading.Thread):
    """Queries the table over and over until stopped, keeping every answer."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.snapshots: list[dict[str, Any]] = []
        self.vanished = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.snapshots.append(query(str(self.root)))
                except QueryError as err:
                    if not isinstance(err.__cause__, FileNotFoundError):
                        raise
                    # Listed, then deleted before it was read: the query fails whole and is retried.
                    self.vanished += 1
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            self.error = err


@pytest.mark.parametrize("fmt", FORMATS)
def test_latest_never_misses_or_doubles_a_group_during_compaction(copies, fmt) -> None:
    root = copies[fmt]
    expected = query(str(root))
    reader = QueryLoop(root)
    reader.start()
    try:
        # A pause while old and new files coexist, so that the reader sees that state too.
        summary = compact(str(root), PipelineOptions([]), after_write=lambda _: time.sleep(0.25))
    finally:
        reader.stop.set()
        reader.join()
    assert reader.error is None, reader.error
    snapshots = reader.snapshots
    assert summary.compacted >= 6 and len(snapshots) >= 5, (len(snapshots), reader.vanished)
    for snapshot in snapshots:
        assert snapshot["latest"] == expected["latest"]
        assert snapshot["events"] == expected["events"]
    # Some snapshots caught old and merged files side by side: `aggregates` shows those rows twice.
    doubled = [s for s in snapshots if len(s["aggregates"]) > len(expected["aggregates"])]
    assert doubled, f"no snapshot saw the moment both copies exist ({len(snapshots)} snapshots)"
    assert all(set(s["aggregates"]) == set(expected["aggregates"]) for s in snapshots)
    assert query(str(root)) == expected


class Stopped(Exception):
    """Stands for a process killed between its writes and its deletes."""


def test_a_stopped_run_is_completed_by_the_next(copies) -> None:
    root = copies["avro"]
    before = local_files(root)
    expected = query(str(root))
    partitions = sorted(closed_partitions(before))
    calls: list[str] = []

    def stop_at_second(path: str) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise Stopped(path)

    with pytest.raises(Stopped):
        compact(str(root), PipelineOptions([]), after_write=stop_at_second)
    stopped = local_files(root)
    assert f"{partitions[1]}/_compaction.json" in stopped
    halfway = query(str(root))
    assert halfway["latest"] == expected["latest"] and len(halfway["aggregates"]) > len(expected["aggregates"])
    # One of our own temporary files left by a killed write: removed; the writer's stays.
    (root / partitions[2] / f"{OWN_TEMP}.avro").write_bytes(b"partial")

    summary = compact(str(root), PipelineOptions([]))
    assert summary.finished == 1 and summary.undone == 0 and summary.compacted == len(partitions) - 2
    after = local_files(root)
    check_compacted(before, after, "avro")
    assert query(str(root)) == expected and not [k for k in after if OWN_TEMP in k]
    assert compact(str(root), PipelineOptions([])).compacted == 0 and local_files(root) == after


def test_a_run_stopped_while_writing_is_undone_and_redone(copies) -> None:
    root = copies["parquet"]
    before = local_files(root)
    expected = query(str(root))
    first = sorted(closed_partitions(before))[0]

    def stop(path: str) -> None:
        raise Stopped(path)

    with pytest.raises(Stopped):
        compact(str(root), PipelineOptions([]), after_write=stop, target_bytes=8 * 1024)
    # As if the process had died before its last part was written: the plan names a part that is missing.
    parts = sorted((root / first).glob("part-compacted-*"))
    assert len(parts) >= 2
    parts[-1].unlink()
    assert query(str(root))["latest"] == expected["latest"]

    summary = compact(str(root), PipelineOptions([]), target_bytes=8 * 1024)
    assert summary.undone == 1 and summary.finished == 0 and not summary.failed
    after = local_files(root)
    assert query(str(root)) == expected
    assert sorted(k.rpartition("/")[2] for k in after if k.startswith(first + "/")) == [p.name for p in parts]


def test_large_partitions_are_split_into_deterministic_parts(copies, tmp_path) -> None:
    # Small targets for small test partitions (a Parquet file's footer alone is about 4 KiB).
    for fmt, target in {"jsonl": 16 * 1024, "parquet": 12 * 1024, "avro": 4 * 1024}.items():
        root = copies[fmt]
        twin = Path(shutil.copytree(root, tmp_path / f"twin-{fmt}"))
        expected = query(str(root))
        compact(str(root), PipelineOptions([]), target_bytes=target)
        compact(str(twin), PipelineOptions([]), target_bytes=target)
        after = local_files(root)
        assert after == local_files(twin), "the same rows give the same names and bytes"
        assert query(str(root)) == expected
        parts = {k: v for k, v in after.items() if "part-compacted-" in k}
        assert max(k.rpartition("of")[2].split(".")[0] for k in parts) > "001", fmt
        assert all(len(v) <= target or len(decode_rows(k, v)) == 1 for k, v in parts.items()), fmt
        # Parts are already compact, whatever the target of a later run.
        assert compact(str(root), PipelineOptions([])).compacted == 0 and local_files(root) == after


def test_a_partition_that_cannot_be_merged_is_reported_and_left(copies) -> None:
    root = copies["jsonl"]
    bad = sorted(closed_partitions(local_files(root)))[0]
    (root / bad / "part-other.parquet").write_bytes((root / bad / "part-late.jsonl").read_bytes())
    before = local_files(root)
    summary = compact(str(root), PipelineOptions([]))
    assert list(summary.failed) == [bad] and "several formats" in summary.failed[bad]
    assert summary.compacted == len(closed_partitions(before)) - 1
    assert {k: v for k, v in local_files(root).items() if k.startswith(bad + "/")} == {
        k: v for k, v in before.items() if k.startswith(bad + "/")
    }


# --- the command line ---------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipelines.compact", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_command_line(copies, tmp_path) -> None:
    root = copies["jsonl"]
    before = local_files(root)
    expected = query(str(root))
    calls = [
        ("--help",),
        (str(root), "--dry_run"),
        (str(root), "--older_than", "-1"),
        (str(root), "--target_mib", "0.5"),
        (str(tmp_path / "none"),),
    ]
    with ThreadPoolExecutor(len(calls)) as pool:
        helped, dry, bad_age, bad_size, missing = pool.map(lambda args: _cli(*args), calls)
    for option in ("--older_than", "--target_mib", "--dry_run", "OUTPUT_URI", "--s3_endpoint_url"):
        assert option in helped.stdout
    assert dry.returncode == 0 and "to compact" in dry.stdout and "dry run" in dry.stdout
    assert local_files(root) == before
    assert bad_age.returncode == 2 and "--older_than must be" in bad_age.stderr
    assert bad_size.returncode == 2 and "--target_mib must be" in bad_size.stderr
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "not a directory" in missing.stderr

    done = _cli(f"file://{root}", "--target_mib", "128")
    assert done.returncode == 0, done.stderr
    closed = len(closed_partitions(before))
    assert f"compact: [{closed}/{closed}] " in done.stderr and f"{closed} compacted" in done.stdout
    assert "1 not closed" in done.stdout
    assert query(str(root)) == expected
