"""Decoding: every kind of bad record reaches the dead letters with its reason; good ones decode."""

from __future__ import annotations

import io

import fastavro
import orjson
import pytest

from io_connectors.records import RawBatch, ReadFailure
from transforms.decode import Decoder, EventSchema, parse_event_time


def decode(records, **kwargs):
    return Decoder(EventSchema(), **kwargs).decode(RawBatch("src", records))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"", "empty record"),
        (b'{"event_time": 1000, "region": "r", "key": "k"}', "missing value field 'value'"),
        (b'{"event_time": 1000, "region": "r", "key": "k", "value": "12"}', "expected a number"),
        # As text these would merge with other values (1e2 and 100.0, true and "True").
        (b'{"event_time": 1000, "region": "r", "key": 1e2, "value": 1}', "must be a string or a whole number"),
        (b'{"event_time": 1000, "region": true, "key": "k", "value": 1}', "must be a string or a whole number"),
        (b'{"event_time": 1000, "region": "r", "key": 18446744073709551616, "value": 1}', "a whole number"),
        (b'{"event_time": 1000, "region": "r", "key": "k", "value": true}', "expected a number"),
        (b'{"region": "r", "key": "k", "value": 1}', "missing event time field 'event_time'"),
        (b'{"event_time": "noon", "region": "r", "key": "k", "value": 1}', "expected epoch millis or ISO-8601"),
        (b'{"event_time": -5, "region": "r", "key": "k", "value": 1}', "outside 1970..2100"),
        (b'{"event_time": 99999999999999999, "region": "r", "key": "k", "value": 1}', "outside 1970..2100"),
        (b'{"event_time": 1000, "key": "k", "value": 1}', "dimension field 'region'"),
        (b'{"event_time": 1000, "region": {"a": 1}, "key": "k", "value": 1}', "dimension field 'region'"),
        (b'{"event_time": 1000, "region": "r", "key": "k", "value": NaN}', "invalid JSON"),
        (b"[1, 2, 3]", "expected a JSON object"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
        (b'{"event_time": 1000, "region": "r", "key": "k", "value": 1, "pad": "' + b"x" * (1 << 20) + b'"}',
         "over the 1048576-byte limit"),
    ],
)
def test_bad_records_become_dead_letters_with_reason(payload, reason):
    columns, dead = decode([payload])
    assert len(columns) == 0
    assert len(dead) == 1
    assert reason in dead[0]["error"]
    assert dead[0]["source"] == "src:0"


def test_dead_letter_payload_is_text_when_utf8_else_base64():
    _, dead = decode([b"{bad", b"\xff\xfe{"])
    assert dead[0]["payload"] == "{bad"
    assert "payload" not in dead[1]
    assert dead[1]["payload_b64"] == "//57"


def test_good_records_decode_and_unknown_fields_are_ignored():
    good = orjson.dumps({"event_id": "a", "event_time": "2026-01-01T00:00:01Z", "region": "eu", "key": 7,
                         "value": 2, "extra": {"nested": True}})
    columns, dead = decode([good, b'{"event_time": 1500, "region": "us", "key": "x", "value": 1.5}'])
    assert dead == []
    assert columns.times_ms == [1_767_225_601_000, 1500]
    assert columns.values == [2.0, 1.5]
    assert columns.dims == [("eu", "7"), ("us", "x")]
    assert columns.ids == ["a", None]


@pytest.mark.parametrize(
    ("raw", "millis"),
    [
        (1_700_000_000_123, 1_700_000_000_123),
        ("1700000000123", 1_700_000_000_123),
        ("2026-01-01T00:00:00Z", 1_767_225_600_000),
        ("2026-01-01T01:00:00+01:00", 1_767_225_600_000),
        ("2026-01-01T00:00:00.250", 1_767_225_600_250),
    ],
)
def test_event_time_accepts_epoch_millis_and_iso8601(raw, millis):
    assert parse_event_time(raw, "event_time") == millis


def test_schemaless_avro_needs_a_schema_and_decodes_with_one():
    schema = {"type": "record", "name": "E", "fields": [
        {"name": "event_id", "type": "string"}, {"name": "event_time", "type": "long"},
        {"name": "region", "type": "string"}, {"name": "key", "type": "string"}, {"name": "value", "type": "double"}]}
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema),
                               {"event_id": "a", "event_time": 5000, "region": "eu", "key": "k", "value": 3.0})
    _, dead = decode([buffer.getvalue()], input_format="avro")
    assert "no --avro_schema given" in dead[0]["error"]
    columns, dead = decode([buffer.getvalue(), b"\x02"], input_format="avro", avro_schema=schema)
    assert columns.values == [3.0]
    assert len(dead) == 1 and "invalid Avro" in dead[0]["error"]


def test_read_failures_from_sources_become_dead_letters():
    columns, dead = decode([ReadFailure("unreadable Avro container after record 3: bad block", b"")])
    assert len(columns) == 0
    assert dead[0]["error"].startswith("unreadable Avro container")


@pytest.mark.parametrize(
    ("raw", "unit", "millis"),
    [
        (1_767_225_600, "s", 1_767_225_600_000),
        (1_767_225_600_000_001, "us", 1_767_225_600_000),
        ("2026-01-01T00:00:00.0019Z", "ns", 1_767_225_600_001),  # ISO: exact, rounded down, unit ignored
    ],
)
def test_event_time_units_scale_exactly(raw, unit, millis):
    assert parse_event_time(raw, "event_time", unit) == millis


def test_avro_datetimes_are_event_times_and_dates_are_refused():
    from datetime import UTC, date, datetime

    assert parse_event_time(datetime(2026, 1, 1, 0, 0, 0, 1999, tzinfo=UTC), "t") == 1_767_225_600_001
    assert parse_event_time(datetime(2026, 1, 1), "t") == 1_767_225_600_000  # naive means UTC
    with pytest.raises(ValueError, match="has type date without a time"):
        parse_event_time(date(2026, 1, 1), "t")


def test_unknown_time_unit_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="use one of s, ms, us, ns"):
        EventSchema(time_unit="minutes")
