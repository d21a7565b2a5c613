"""Sinks on the local filesystem and with fake store clients: layout, schemas, idempotency,
atomic writes (the over-the-wire tests are tests/integration/test_sinks_stores.py)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import apache_beam as beam
import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines.config import ConfigError, build_config
from pipelines.run import parse_options
from pipelines.sink_options import check_sink_options
from transforms import sinks
from transforms.formats import PUBLISHED_SCHEMA, arrow_schema, avro_schema, encode
from transforms.rolling import WriteRolledAggregates
from transforms.sinks import WriteDeadLetters, object_writer
from transforms.store_clients import gcs_storage_client

DIMS = ("region", "key")


def record(minute: int, region: str, key: str, count: int = 3, pane: str = "ON_TIME", index: int = 0) -> dict:
    start = f"2026-01-01T23:{minute:02d}:00Z"
    return {
        "window_start": start,
        "window_end": f"2026-01-01T23:{minute + 1:02d}:00Z",
        "region": region,
        "key": key,
        "count": count,
        "sum": 1.5 * count,
        "min": 0.5,
        "max": 2.5,
        "mean": 1.5,
        "p50": 1.5,
        "p95": 2.5,
        "p99": 2.5,
        "distinct_ids": count,
        "pane": pane,
        "pane_index": index,
    }


RECORDS = [record(m, r, k) for m in (1, 2) for r in ("eu-west-1", "eu-north-1") for k in ("a", "b")]


def test_published_schema_is_the_default_schema() -> None:
    assert json.loads(PUBLISHED_SCHEMA.read_text()) == avro_schema(DIMS)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "avro"])
def test_encode_is_byte_identical_for_identical_input(fmt: str) -> None:
    assert encode(RECORDS, fmt, DIMS) == encode([dict(r) for r in RECORDS], fmt, DIMS)


def test_parquet_and_avro_carry_the_explicit_schema(tmp_path: Path) -> None:
    (tmp_path / "a.parquet").write_bytes(encode(RECORDS, "parquet", DIMS))
    assert pq.read_schema(tmp_path / "a.parquet").remove_metadata() == arrow_schema(DIMS)
    (tmp_path / "a.avro").write_bytes(encode(RECORDS, "avro", DIMS))
    with open(tmp_path / "a.avro", "rb") as handle:
        assert list(fastavro.reader(handle)) == RECORDS


def _write(records: list[dict], out: Path, fmt: str) -> None:
    # Records (the form session windows take), rolled per (dt/hour, shard) as a bounded run does.
    writer = WriteRolledAggregates(str(out), fmt, DIMS, 4, windowed=False, roll_s=None)
    with BeamTestPipeline() as p:
        _ = p | beam.Create(records) | writer


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


NAME = re.compile(r"^dt=2026-01-01/hour=23/region=(eu-west-1|eu-north-1)/part-s00[0-3]of004\.parquet$")


def test_layout_and_idempotent_rerun(tmp_path: Path) -> None:
    _write(RECORDS, tmp_path, "parquet")
    first = _files(tmp_path)
    # Both windows of a partition share its files: one per shard holding any of its keys (a, b).
    assert 2 <= len(first) <= 4 and all(NAME.match(name) for name in first), list(first)
    read = [row for data in first.values() for row in pq.read_table(pa.BufferReader(data)).to_pylist()]
    key = lambda r: (r["window_start"], r["region"], r["key"])  # noqa: E731
    assert sorted(read, key=key) == sorted(RECORDS, key=key)
    # Shuffled input, another run: the same names and bytes, nothing added, no temp files.
    shuffled = RECORDS[:]
    random.Random(1).shuffle(shuffled)
    _write(shuffled, tmp_path, "parquet")
    assert _files(tmp_path) == first


def test_panes_of_one_roll_share_a_file_and_keep_their_pane(tmp_path: Path) -> None:
    early = [record(1, "eu-west-1", "a", count=1, pane="EARLY", index=0)]
    on_time = [record(1, "eu-west-1", "a", count=3, pane="ON_TIME", index=1)]
    _write(on_time + early, tmp_path, "jsonl")
    files = _files(tmp_path)
    assert len(files) == 1
    rows = [json.loads(line) for line in next(iter(files.values())).splitlines()]
    assert [(r["pane"], r["pane_index"], r["count"]) for r in rows] == [("EARLY", 0, 1), ("ON_TIME", 1, 3)]


def _dead_batches() -> list[list[dict]]:
    """Five batches of dead letters, with payloads that test the line framing (newlines, CR,
    U+2028, NUL, non-ASCII)."""
    tricky = ["a\nb", "c\r\nd", "e\u2028f", "nul\x00", "ü€𝄞", ""]
    batches = [
        [
            {"error": f"bad json {b}", "payload": f"{{x{i}{tricky[i % len(tricky)]}", "source": f"f{b}:{i}"}
            for i in range(40)
        ]
        for b in range(4)
    ]
    batches.append([{"error": "overflow", "source": "aggregate:2026-01-01T00:00:00Z", "payload": "{}", "n": 1}])
    return batches


def _write_dead(elements: list[bytes], out: Path, reshuffle: bool = False) -> None:
    with BeamTestPipeline() as p:
        lines = p | beam.Create(elements)
        if reshuffle:
            lines = lines | beam.Reshuffle()
        _ = lines | WriteDeadLetters(str(out))


DEAD_NAME = re.compile(r"^part-[0-9a-f]{32}\.jsonl$")


def test_dead_letter_lines_round_trip_whatever_the_payload() -> None:
    for batch in _dead_batches():
        data = sinks.dead_letter_lines(batch)
        assert data.count(b"\n") == len(batch) and data.endswith(b"\n")
        key = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731
        assert sorted(sinks.dead_letter_records(data), key=key) == sorted(batch, key=key)
    assert sinks.dead_letter_lines([]) == b"" and list(sinks.dead_letter_records(b"")) == []


def test_dead_letter_files_are_idempotent_whatever_the_order_and_bundling(tmp_path: Path) -> None:
    """One file per batch, named by the digest of its bytes: the records' order within a batch,
    the batches' order, bundling and a retried (repeated) batch change neither names nor bytes."""
    batches = _dead_batches()
    first = tmp_path / "first"
    _write_dead([sinks.dead_letter_lines(b) for b in batches], first)
    files = _files(first)
    assert len(files) == len(batches) and all(DEAD_NAME.match(name) for name in files), list(files)
    written = sorted(line for data in files.values() for line in data.splitlines())
    assert written == sorted(line for b in batches for line in sinks.dead_letter_lines(b).splitlines())

    rng = random.Random(7)
    shuffled = [rng.sample(b, len(b)) for b in reversed(batches)]
    again = [sinks.dead_letter_lines(b) for b in shuffled]
    second = tmp_path / "second"
    _write_dead(again + again[:2], second, reshuffle=True)  # two batches delivered twice
    assert _files(second) == files
    _write_dead(again, first)  # a re-run into the same directory adds nothing
    assert _files(first) == files


def test_dead_letter_writer_refuses_dicts_saying_what_it_takes(tmp_path: Path) -> None:
    writer = sinks._WriteDeadLetterLines(str(tmp_path))
    writer.setup()
    with pytest.raises(TypeError, match="dead_letter_lines"):
        writer.process({"error": "x", "source": "s"})
    writer.process(b"")  # an empty batch writes nothing
    assert _files(tmp_path) == {}


class FakeStore:
    instances = 0

    def __init__(self, **_: Any) -> None:
        FakeStore.instances += 1
        self.objects: dict[str, bytes] = {}
        self.mime: dict[str, str] = {}
        FakeStore.last = self

    def open(self, path: str, mode: str, mime_type: str) -> Any:
        store = self

        class Handle:
            def __enter__(self) -> Handle:
                self.chunks: list[bytes] = []
                return self

            def write(self, data: bytes) -> None:
                self.chunks.append(data)

            def __exit__(self, *exc: Any) -> None:
                # Like a multipart/resumable upload: nothing is visible before the commit.
                store.objects[path] = b"".join(self.chunks)
                store.mime[path] = mime_type

        assert mode == "wb"
        return Handle()


def test_object_store_writer_keeps_one_client_and_writes_final_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    import apache_beam.io.aws.s3io as s3io

    monkeypatch.setattr(s3io, "S3IO", FakeStore)
    FakeStore.instances = 0
    write = object_writer("s3", PipelineOptions([]))
    for i in range(5):
        write(f"s3://b/p/part-{i}.avro", b"x" * i, "application/avro")
    assert FakeStore.instances == 1
    assert sorted(FakeStore.last.objects) == [f"s3://b/p/part-{i}.avro" for i in range(5)]
    assert set(FakeStore.last.mime.values()) == {"application/avro"}


def test_local_writer_renames_a_temporary_file(tmp_path: Path) -> None:
    write = object_writer("file")
    write(f"{tmp_path}/x/part-1.jsonl", b"{}\n", "application/x-ndjson")
    assert _files(tmp_path) == {"x/part-1.jsonl": b"{}\n"}


def test_gcs_client_is_anonymous_only_for_an_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    assert gcs_storage_client(PipelineOptions([])) is None
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    client = gcs_storage_client(PipelineOptions(["--project=p1"]))
    assert client.project == "p1"
    assert client._connection.API_BASE_URL == "http://127.0.0.1:1"


def test_connection_string_never_on_the_command_line() -> None:
    with pytest.raises(ConfigError, match="export AZURE_STORAGE_CONNECTION_STRING instead"):
        check_sink_options(PipelineOptions(["--azure_connection_string=AccountKey=s3cret"]))
    with pytest.raises(ConfigError) as err:
        build_config(parse_options(["--output", "azfs://a/cont/x", "--azure_connection_string", "AccountKey=s3cret"]))
    assert "s3cret" not in str(err.value)


def test_help_lists_the_sink_options(capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.run import _help_parser

    text = _help_parser().format_help()
    assert "--source_region" in text and "AZURE_STORAGE_CONNECTION_STRING" in text and "STORAGE_EMULATOR_HOST" in text
