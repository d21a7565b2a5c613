"""Bad input at volume: 1% malformed records of every kind, over files and over a Kinesis
stream, all in the dead letters with their reason; the good records' aggregates are exact."""

from __future__ import annotations

import io
import json
import random
import uuid

import fastavro
import pytest

from tests.reliability.helpers import (
    assert_same_aggregates,
    dead_letters,
    dead_payload,
    encode,
    expected_aggregates,
    final_aggregates,
    good_events,
    kinesis_stream,
    malformed_json,
    put_kinesis,
    read_panes,
    run_cli,
    write_lines,
)

AVRO_SCHEMA = {
    "type": "record", "name": "Event",
    "fields": [{"name": "event_id", "type": "string"}, {"name": "event_time", "type": "long"},
               {"name": "region", "type": "string"}, {"name": "key", "type": "string"},
               {"name": "value", "type": "double"}],
}
# What each kind's dead-letter reason must say (the decoder's own words, checked loosely).
REASONS = {
    "bad_json": "invalid JSON", "wrong_type_value": "expected a number", "wrong_type_time": "expected epoch millis",
    "missing_time": "missing event time", "invalid_utf8": "invalid JSON", "nan": "invalid JSON",
    "infinity": "invalid JSON", "far_future": "outside 1970..2100", "before_1970": "outside 1970..2100",
    "huge": "over the 1048576-byte limit", "bad_avro": "invalid Avro",
}


def _mix(good: list[bytes], bad: list[tuple[str, bytes]], seed: int) -> list[bytes]:
    records = good + [payload for _, payload in bad]
    random.Random(seed).shuffle(records)
    return records


def _check_dead_letters(out, bad: list[tuple[str, bytes]]) -> None:
    dead = dead_letters(out)
    assert len(dead) == len(bad)
    by_payload = {dead_payload(d): d for d in dead}
    for kind, payload in bad:
        assert payload in by_payload, f"{kind} record missing from the dead letters"
        record = by_payload[payload]
        assert REASONS[kind] in record["error"], (kind, record["error"])
        assert record["source"]  # where it came from


def test_one_percent_of_every_kind_over_files(tmp_path):
    """10,000 good events and 1% malformed (10 of each of 10 kinds, including 1 MiB+ records):
    exact aggregates of the good ones, every bad one dead-lettered with its reason."""
    events = good_events(9_900, seed=3)
    bad = [kind for i in range(10) for kind in malformed_json(i)]
    write_lines(tmp_path / "events.jsonl", _mix(encode(events), bad, seed=3))
    out = tmp_path / "out"
    run_cli({}, "--source", f"file://{tmp_path}/events.jsonl", "--output", str(out))
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(events))
    _check_dead_letters(out, bad)


@pytest.mark.integration
def test_one_percent_of_every_kind_over_kinesis(kinesis_service, tmp_path):
    """The same mix through a streaming Kinesis read (no 1 MiB+ record: Kinesis refuses records
    over 1 MiB at PutRecords, so none can arrive from a stream)."""
    client = kinesis_service.client()
    stream = kinesis_stream(client, 2, f"bad-{uuid.uuid4().hex[:8]}")
    events = good_events(4_950, seed=4)
    bad = [kind for i in range(6) for kind in malformed_json(i, huge=False)]
    put_kinesis(client, stream, _mix(encode(events), bad, seed=4))
    out = tmp_path / "out"
    run_cli(kinesis_service.env(), "--source", f"kinesis://{stream}?region=us-east-1",
            "--kinesis_start_position", "TRIM_HORIZON", "--kinesis_read_to_latest", "--kinesis_poll_interval", "0.2",
            "--streaming", "--output", str(out))
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(events))
    _check_dead_letters(out, bad)


@pytest.mark.integration
def test_bad_avro_over_kinesis(kinesis_service, tmp_path):
    """Schemaless Avro records with 1% corrupt ones (truncated, garbage): corrupt ones are
    dead-lettered as invalid Avro, the rest aggregate exactly."""
    client = kinesis_service.client()
    stream = kinesis_stream(client, 1, f"avro-{uuid.uuid4().hex[:8]}")
    events = [{**e, "value": float(e["value"])} for e in good_events(990, seed=6)]
    parsed = fastavro.parse_schema(AVRO_SCHEMA)

    def avro(event: dict) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, event)
        return buffer.getvalue()

    encoded = [avro(e) for e in events]
    bad = [("bad_avro", encoded[i][:7]) for i in range(5)] + [("bad_avro", b"\xff" * (9 + i)) for i in range(5)]
    put_kinesis(client, stream, _mix(encoded, bad, seed=6))
    schema_path = tmp_path / "event.avsc"
    schema_path.write_text(json.dumps(AVRO_SCHEMA))
    out = tmp_path / "out"
    run_cli(kinesis_service.env(), "--source", f"kinesis://{stream}?region=us-east-1", "--input_format", "avro",
            "--avro_schema", str(schema_path), "--kinesis_start_position", "TRIM_HORIZON",
            "--kinesis_read_to_latest", "--kinesis_poll_interval", "0.2", "--output", str(out))
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(events))
    _check_dead_letters(out, bad)
