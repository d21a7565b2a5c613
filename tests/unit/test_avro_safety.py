"""Avro writer schemas that let a few bytes claim unbounded work are refused (files, stream
records and --avro_schema alike), accepted ones yield bounds, and dead letters never raise."""

from __future__ import annotations

import io
import json
import re
import struct

import fastavro
import pytest

from io_connectors.avro_blocks import encode_long
from io_connectors.avro_safety import MAX_SCHEMA_DEPTH, UnsafeAvroSchema, check_schema, schema_problem
from io_connectors.records import RawBatch
from pipelines.config import ConfigError, _load_avro_schema
from transforms.decode import MAX_PAYLOAD_REPR, Decoder, EventSchema, dead_letter

BASE = [
    {"name": "event_time", "type": "long"},
    {"name": "value", "type": "double"},
    {"name": "region", "type": "string"},
    {"name": "key", "type": "string"},
]


def record(*extra: dict, name: str = "E") -> dict:
    return {"type": "record", "name": name, "fields": [*BASE, *extra]}


ZERO_RECORD = {"type": "record", "name": "Z", "fields": [{"name": "n", "type": "null"}]}
RECURSIVE = record({"name": "nest", "type": ["null", {"type": "record", "name": "Node",
                                                      "fields": [{"name": "next", "type": ["null", "Node"]}]}]})

REFUSED = {
    "array of null": (record({"name": "pad", "type": {"type": "array", "items": "null"}}),
                      "has an array of null items (field 'pad' of 'E')"),
    "array of fixed 0": (record({"name": "pad", "type": {"type": "array",
                                                         "items": {"type": "fixed", "name": "F", "size": 0}}}),
                         "has an array of items that take zero bytes (a fixed of size 0)"),
    "array of zero-byte records": (record({"name": "pad", "type": {"type": "array", "items": ZERO_RECORD}}),
                                   "record 'Z', whose fields all take zero bytes"),
    "nested array of null": (record({"name": "a", "type": {"type": "map", "values": {
        "type": "array", "items": "null"}}}), "has an array of null items"),
    "zero-byte record": ({"type": "record", "name": "E", "fields": [{"name": "event_time", "type": "null"}]},
                         "encodes a whole record in zero bytes"),
    "null schema": ("null", "encodes a whole record in zero bytes"),
    "recursive": (RECURSIVE, "is recursive: type 'Node' can hold another 'Node'"),
    "recursive by namespace": ({"type": "record", "name": "T", "namespace": "a.b", "fields": [
        {"name": "x", "type": "long"}, {"name": "kids", "type": {"type": "array", "items": "a.b.T"}}]},
        "is recursive: type 'a.b.T'"),
    "undefined name": (record({"name": "x", "type": "Missing"}), "names type 'Missing', which it does not define"),
    # fastavro decodes a decimal in time quadratic in its length: bytes have no bound.
    "bytes decimal": (record({"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4}}),
                      "has a decimal at field 'd' of 'E' that is not a fixed of at most 32 bytes"),
    "long fixed decimal": (record({"name": "d", "type": {"type": "fixed", "name": "D", "size": 1000,
                                                         "logicalType": "decimal", "precision": 38}}),
                           "has a decimal at field 'd'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_schemas_say_why_and_what_to_do(case):
    schema, why = REFUSED[case]
    with pytest.raises(UnsafeAvroSchema) as err:
        check_schema(schema)
    message = str(err.value)
    assert why in message
    assert re.search(r"not read: (give|write)|fix the writer's schema$", message), message  # what to do
    # fastavro's parsed form is judged the same way (the decoder holds that form).
    if case != "undefined name":
        assert why in schema_problem(fastavro.parse_schema(schema))


def test_deep_schemas_are_refused():
    schema: object = "long"
    for _ in range(MAX_SCHEMA_DEPTH + 1):
        schema = {"type": "array", "items": schema}
    assert "nests values more than" in schema_problem(schema)


@pytest.mark.parametrize(
    "schema",
    [
        record(),
        record({"name": "event_id", "type": ["null", "string"]}),
        record({"name": "tags", "type": {"type": "array", "items": "string"}}),
        # Map keys take at least one byte each, so map<null> (a set of strings) is bounded.
        record({"name": "set", "type": {"type": "map", "values": "null"}}),
        record({"name": "maybe", "type": ["null", ZERO_RECORD]}),  # a union index takes a byte
        record({"name": "f", "type": {"type": "fixed", "name": "F", "size": 0}}),  # not in an array
        record({"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}),
        record({"name": "d", "type": {"type": "fixed", "name": "D", "size": 16, "logicalType": "decimal",
                                      "precision": 38, "scale": 2}}),
        # A named type used twice is not recursion.
        record({"name": "a", "type": {"type": "fixed", "name": "F", "size": 4}}, {"name": "b", "type": "F"}),
    ],
)
def test_accepted_schemas_have_bounds(schema):
    bounds = check_schema(schema)
    assert bounds.min_bytes >= 11  # long (1) + double (8) + two strings (1 each)
    assert bounds.expansion > 0
    assert schema_problem(schema) is None


def zz_string(text: str) -> bytes:
    data = text.encode()
    return encode_long(len(data)) + data


def test_schemaless_record_under_a_refused_schema_is_a_dead_letter_not_a_billion_nulls():
    schema = record({"name": "tags", "type": {"type": "array", "items": "null"}})
    raw = encode_long(1767225600000) + struct.pack("<d", 1.0) + zz_string("r") + zz_string("k")
    raw += encode_long(4_000_000_000) + encode_long(0)
    decoder = Decoder(EventSchema(), "avro", schema)
    columns, [letter] = decoder.decode(RawBatch("kinesis", [raw]))
    assert len(columns) == 0 and letter["source"] == "kinesis:0"
    assert letter["error"].startswith(
        "schemaless Avro record not read: the --avro_schema schema 'E' has an array of null items"
    )


def container(schema: dict, records: list[dict], codec: str = "null") -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), records, codec=codec)
    return buf.getvalue()


def test_container_stream_records_are_checked_like_files():
    good = {"event_time": 1767225600000, "value": 1.0, "region": "r", "key": "k"}
    decoder = Decoder(EventSchema(), "avro")
    columns, dead = decoder.decode(RawBatch("s", [container(record(), [good], "deflate")]))
    assert (len(columns), dead) == (1, [])
    bomb = container(record({"name": "pad", "type": {"type": "array", "items": "null"}}), [{**good, "pad": []}])
    recursive = container(RECURSIVE, [{**good, "nest": None}])
    two = container(record(), [good, good])
    _, dead = decoder.decode(RawBatch("s", [bomb, recursive, two]))
    assert [d["source"] for d in dead] == ["s:0", "s:1", "s:2"]
    assert dead[0]["error"].startswith(
        "Avro container record not read: its Avro writer schema 'E' has an array of null items"
    )
    assert "is recursive" in dead[1]["error"]
    assert dead[2]["error"] == "Avro container record holds 2 records; expected exactly 1"


def test_avro_schema_option_is_refused_before_any_work(tmp_path):
    path = tmp_path / "s.avsc"
    path.write_text(json.dumps(RECURSIVE))
    with pytest.raises(ConfigError) as err:
        _load_avro_schema(str(path))
    assert str(err.value).startswith(f"--avro_schema {str(path)!r} is refused: schema 'E' is recursive")
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nests too deep"):
        _load_avro_schema(str(path))
    path.write_text(json.dumps(record()))
    assert _load_avro_schema(str(path)) == record()


def test_dead_letter_never_raises_and_stays_bounded():
    deep: dict = {}
    node = deep
    for _ in range(2500):
        node["a"] = {}
        node = node["a"]
    letter = dead_letter("why", deep, "p")
    assert letter["payload"].startswith("{'a': {'a': ") and len(letter["payload"]) <= MAX_PAYLOAD_REPR + 40
    wide = {f"k{i}": 10**100 + i for i in range(100_000)}  # ints beyond 64 bits: orjson refuses them
    assert len(dead_letter("why", wide, "p")["payload"]) <= MAX_PAYLOAD_REPR + 40
    assert dead_letter("why", {"n": 10**5000}, "p")["payload"] == "{'n': <int of 16610 bits>}"
