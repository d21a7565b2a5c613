"""One decode contract for the row path and the columnar fast path.

The row path (transforms.decode.Decoder) is the reference. The columnar path (Arrow JSON
reader, or Avro container dicts) must accept exactly what the row path accepts and produce
identical events; whatever it cannot judge it hands back (None) and the row path decides,
with its dead letters and reasons. These tests feed both paths the same batches.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from io_connectors.records import RawBatch
from tests.unit.decode_oracle import check_batch
from transforms.columnar import MIN_BATCH
from transforms.decode import MAX_EVENT_TIME_MS, PLAUSIBLE_FROM_MS, Decoder, EventSchema

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SCALE = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}


def clean_line(i: int, rng: random.Random, unit: str = "ms", uuid_ids: bool = False) -> bytes:
    """A valid event whose time is plausible in `unit`: the kind of line the fast path must take."""
    millis = rng.randrange(PLAUSIBLE_FROM_MS, MAX_EVENT_TIME_MS) if rng.random() < 0.2 else T0 + i * 7
    mul, div = SCALE[unit]
    raw_time = millis // mul if mul > 1 else millis * div + rng.randrange(div)
    event_id = f"{rng.getrandbits(128):032x}" if uuid_ids else f"e{i}"
    return orjson.dumps({"event_id": event_id, "event_time": raw_time, "region": rng.choice(["eu", "us", "ap"]),
                         "key": f"k{rng.randrange(50)}", "value": rng.randrange(1, 10_000) / 100})


def clean_batch(n: int = MIN_BATCH, seed: int = 1, **kwargs) -> list[bytes]:
    rng = random.Random(seed)
    return [clean_line(i, rng, **kwargs) for i in range(n)]


GOOD = {"event_id": "x", "event_time": T0, "region": "eu", "key": "k", "value": 1.5}


def with_line(line: bytes, at: int = 100, n: int = MIN_BATCH) -> list[bytes]:
    records = clean_batch(n)
    records[at] = line
    return records


# --- Known disagreements, each now decided by the row path -------------------------------------

LINE = orjson.dumps(GOOD)
FIELDS = LINE[1:-1]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (LINE + LINE, "invalid JSON"),  # two objects on one line were counted twice
        (b"   ", "invalid JSON"),  # a whitespace-only line vanished
        (b"", "empty record"),
        (b"null", "expected a JSON object"),
        (b"[1]", "expected a JSON object"),
        (b"\xef\xbb\xbf" + LINE, "invalid JSON"),  # UTF-8 BOM
        (b'{"pad": NaN, ' + FIELDS + b"}", "invalid JSON"),
        (b'{"pad": -Infinity, ' + FIELDS + b"}", "invalid JSON"),
        (b'{"pad": Inf, ' + FIELDS + b"}", "invalid JSON"),  # Arrow reads Inf too
        (b'{"pad": [1,\t-Inf], ' + FIELDS + b"}", "invalid JSON"),
        (LINE.replace(b'"eu"', b'"Info: NaN, Inf"'), None),  # the words inside a string are data

        (b'{"pad": "\xff", ' + FIELDS + b"}", "invalid JSON"),  # invalid UTF-8 in an ignored field
        (b'{"region": "\xff\xfe", ' + FIELDS.replace(b'"region":"eu",', b"") + b"}", "invalid JSON"),
        (b'{"pad": ' + b"[" * 1100 + b"]" * 1100 + b", " + FIELDS + b"}", "invalid JSON"),  # depth
        (b'{"pad": 1.7976931348623159e308, ' + FIELDS + b"}", "invalid JSON"),  # rounds to inf
        (b'{"pad": 1' + b"0" * 309 + b", " + FIELDS + b"}", "invalid JSON"),
        (b'{"pad": "\\ud800", ' + FIELDS + b"}", "invalid JSON"),  # lone surrogate escape
        (b'{"event_time": 1, ' + FIELDS + b"}", None),  # duplicate key: orjson keeps the last
        (b'{"region": 7, ' + FIELDS.replace(b'"region":"eu",', b"") + b"}", None),  # str(7)
        (b'{"event_id": 7, ' + FIELDS.replace(b'"event_id":"x",', b"") + b"}", None),
        (LINE.replace(b'"value":1.5', b'"value":-0'), None),  # orjson: int 0, Arrow: -0.0
        (LINE.replace(b"}", b",}"), "invalid JSON"),
        (LINE.replace(b'"region"', b'/* c */ "region"'), "invalid JSON"),
        (LINE.replace(b'"eu"', b'"e\x01u"'), "invalid JSON"),
        (LINE + b" ", None),  # trailing whitespace is fine for orjson
        (b' {"a": 1,\n' + FIELDS + b"}", None),  # a newline inside a record is whitespace
        (LINE.replace(b'"event_time":%d' % T0, b'"event_time":%d' % (T0 // 1000)), "looks like epoch seconds"),
    ],
)
def test_odd_lines_in_a_large_batch_are_judged_by_the_row_path(line, reason):
    for at in (0, 100, MIN_BATCH - 1):  # first line (where `null` crashed pyarrow), middle, last
        records = with_line(line, at)
        events, dead, fast = check_batch(records, EventSchema())
        assert not fast, "the fast path must leave a batch with an odd line to the row path"
        if reason is None:
            assert dead == [] and len(events) == len(records)
        else:
            assert len(dead) == 1 and reason in dead[0]["error"], dead
            assert dead[0]["source"] == f"src:{at}"


def test_clean_batches_take_the_fast_path_in_every_unit_and_with_hex_ids():
    for unit in SCALE:
        _, _, fast = check_batch(clean_batch(2000, unit=unit), EventSchema(time_unit=unit))
        assert fast, unit
    _, _, fast = check_batch(clean_batch(2000, uuid_ids=True), EventSchema())
    assert fast
    # \u escapes outside the surrogate range, raw UTF-8, nested ignored fields and exponent-like
    # text inside strings are no reason to bail out.
    records = clean_batch(MIN_BATCH)
    records[3] = json.dumps({**GOOD, "region": "Zürich \u00e9", "extra": {"a": [1, 2, {"b": None}]},
                             "note": "id a3e301f, hash e4000"}).encode()
    records[4] = orjson.dumps({**GOOD, "region": "\U0001f600 \u00e9"})
    events, _, fast = check_batch(records, EventSchema())
    assert fast and events[3][3] == ("Zürich \u00e9", "k") and events[4][3] == ("\U0001f600 \u00e9", "k")


def test_non_bytes_records_never_reach_arrow():
    from io_connectors.records import ReadFailure

    records: list = clean_batch()
    records[7] = ReadFailure("unreadable block", b"")
    _, dead, fast = check_batch(records, EventSchema())
    assert not fast and dead[0]["error"] == "unreadable block"


# --- Event time units -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "raw", "millis"),
    [
        ("s", 1_767_225_600, T0),
        ("s", 1_767_225_600.123, T0 + 123),  # the decimal as written, not its binary value
        ("s", "1767225600", T0),
        ("ms", 1_767_225_600_123.9, T0 + 123),  # rounded down
        ("us", 1_767_225_600_123_999, T0 + 123),
        ("ns", 1_767_225_600_123_999_999, T0 + 123),
        ("s", "2026-01-01T00:00:00Z", T0),  # ISO-8601 carries its own unit
        ("ms", 1000, 1000),  # 1970, but plausible in no other unit: accepted as before
    ],
)
def test_numeric_event_times_are_read_in_the_configured_unit(unit, raw, millis):
    schema = EventSchema(time_unit=unit)
    columns, dead = Decoder(schema).decode(RawBatch("s", [orjson.dumps({**GOOD, "event_time": raw})]))
    assert dead == [] and columns.times_ms == [millis]


@pytest.mark.parametrize(
    ("unit", "raw", "reason"),
    [
        ("ms", 1_767_225_600, "'event_time' = 1767225600 is 1970-01-21 as epoch millis; it looks like epoch "
                              "seconds: pass --event_time_unit s"),
        ("ms", 1_767_225_600_000_000, "is after 2100 as epoch millis; it looks like epoch micros: pass "
                                      "--event_time_unit us"),
        ("s", T0, "it looks like epoch millis: pass --event_time_unit ms"),
        ("ns", T0, "it looks like epoch millis"),
        ("ms", -86_400_000, "outside 1970..2100"),
        ("s", -1, "outside 1970..2100"),
        ("ms", 4_200_000_000_000, "outside 1970..2100"),
        ("ms", "9" * 5000, "outside 1970..2100"),
    ],
)
def test_implausible_event_times_are_dead_letters_naming_the_flag(unit, raw, reason):
    records = [orjson.dumps({**GOOD, "event_time": raw})]
    _, dead = Decoder(EventSchema(time_unit=unit)).decode(RawBatch("s", records))
    assert len(dead) == 1 and reason in dead[0]["error"]
    assert len(dead[0]["error"]) < 400  # the raw value is cut, never pasted whole into the reason


def test_a_batch_of_epoch_seconds_read_as_millis_is_dead_lettered_not_put_in_1970():
    records = clean_batch(MIN_BATCH, unit="s")
    events, dead, fast = check_batch(records, EventSchema(time_unit="ms"))
    assert not fast and events == [] and len(dead) == MIN_BATCH
    assert all("pass --event_time_unit s" in d["error"] for d in dead)


# --- Avro: container dicts and timestamp logical types --------------------------------------------

AVRO_SCHEMA = {
    "type": "record", "name": "E", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "region", "type": "string"}, {"name": "key", "type": "string"},
        {"name": "value", "type": "double"}]}


@pytest.mark.parametrize("logical", ["timestamp-millis", "timestamp-micros", "local-timestamp-millis",
                                     "local-timestamp-micros"])
def test_avro_timestamp_logical_types_decode_exactly_on_both_paths(logical):
    schema = json.loads(json.dumps(AVRO_SCHEMA))
    schema["fields"][1]["type"]["logicalType"] = logical
    scale = 1000 if "micros" in logical else 1
    rows = [{"event_id": f"e{i}", "event_time": (T0 + i * 37) * scale + (999 if scale > 1 else 0), "region": "eu",
             "key": "k", "value": float(i)} for i in range(MIN_BATCH)]
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), rows)
    # One container per record on a stream: the row path reads each.
    single = io.BytesIO()
    fastavro.writer(single, fastavro.parse_schema(schema), rows[:1])
    columns, dead = Decoder(EventSchema(), "avro").decode(RawBatch("s", [single.getvalue()]))
    assert dead == [] and columns.times_ms == [T0]
    # A container file hands over decoded dicts (datetimes): both paths, same events.
    records = list(fastavro.reader(io.BytesIO(buffer.getvalue())))
    assert isinstance(records[0]["event_time"], datetime)
    events, dead, fast = check_batch(records, EventSchema(), "avro")
    assert fast and dead == []
    assert [e[0] for e in events] == [T0 + i * 37 for i in range(MIN_BATCH)]


@pytest.mark.parametrize(
    "odd",
    [
        {"value": True}, {"value": "12"}, {"value": Decimal("1.5")}, {"value": 2**60}, {"event_time": "soon"},
        {"event_time": 1767225600.5}, {"event_time": True}, {"event_time": T0 // 1000},
        {"event_time": date(2026, 1, 1)}, {"region": b"eu"}, {"region": 7}, {"region": None}, {"event_id": b"x"},
        {"event_id": 7}, {"event_time": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5)))},
        {"event_time": datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)},
    ],
)
def test_avro_dicts_with_odd_types_agree_with_the_row_path(odd):
    records = [{**GOOD, "event_id": f"e{i}", "event_time": T0 + i} for i in range(MIN_BATCH)]
    records[-1] = {**records[-1], **odd}
    _, _, fast = check_batch(records, EventSchema(), "avro")
    assert not fast


# --- Property: generated batches of valid, broken, odd and borderline lines ----------------------

ODD_NUMBERS = [
    b"0", b"-0", b"-0.0", b"0.0", b"1", b"-1", b"1.5", b"1e2", b"1E+2", b"1e-400", b"1e400", b"-1e400", b"1e308",
    b"1.7976931348623157e308", b"1.7976931348623159e308", b"1" + b"0" * 309, b"9007199254740993",
    b"18446744073709551615", b"18446744073709551616", b"123456789012345678901234567890", b"NaN", b"Infinity",
    b"-Infinity", b"01", b"1.", b".5", b"+1", b"0x10", b"1e", b"2.5e-3", b"4.9e-324", b"1" * 40,
]
TIME_EDGES = [
    0, 1000, PLAUSIBLE_FROM_MS - 1, PLAUSIBLE_FROM_MS, MAX_EVENT_TIME_MS - 1, MAX_EVENT_TIME_MS, 946_684_800,
    4_102_444_799, 1_767_225_600, T0, T0 * 1000, T0 * 1_000_000, -1, 2**63 - 1, 2**63, 2**64, 10**20,
    946_684_800_000_000, 946_684_800_000_000_000, 4_102_444_800_000_000, 999_999_999_999,
]
ODD_STRINGS = [
    b'"\\ud800"', b'"\\udc00"', b'"\\ud83d\\ude00"', b'"\\u00e9"', b'"\\u0000"', b'"\xff"', b'"\xc3"',
    b'"\xed\xa0\x80"',
    b'"a\x01b"', b'"a\tb"', b'"\x7f"', b'"NaN"', b'"Infinity"', b'"3e301f"', b'"\\"quoted\\""', b'"\\\\"', b'"\\x41"',
    b'"\\/"', b'""', b'"\xf0\x9f\x98\x80"', b"'single'",
]
NESTED = [b"{}", b"[]", b'{"a":[1,{"b":null}]}', b"[" * 1024 + b"]" * 1024, b"[" * 1025 + b"]" * 1025,
          b'{"x":' * 600 + b"1" + b"}" * 600, b"[1,]", b'{"a":1,}', b"[" * 5]

json_text = st.text(max_size=12).map(lambda s: orjson.dumps(s))
ascii_escaped = st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=True).encode())
number = st.one_of(
    st.integers(-(2**70), 2**70).map(lambda i: str(i).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(orjson.dumps),
    st.sampled_from(ODD_NUMBERS),
)
any_token = st.one_of(
    number, json_text, ascii_escaped, st.sampled_from(ODD_STRINGS), st.sampled_from(NESTED),
    st.sampled_from([b"true", b"false", b"null", b"tru", b"nul"]),
)


@st.composite
def time_token(draw, unit):
    kind = draw(st.integers(0, 5))
    if kind == 0:
        mul, div = SCALE[unit]
        millis = draw(st.integers(PLAUSIBLE_FROM_MS, MAX_EVENT_TIME_MS - 1))
        return str(millis // mul if mul > 1 else millis * div).encode()
    if kind == 1:
        return str(draw(st.sampled_from(TIME_EDGES))).encode()
    if kind == 2:
        return orjson.dumps(draw(st.floats(min_value=-1e20, max_value=1e20)))
    if kind == 3:
        moment = draw(st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2110, 1, 1)))
        return orjson.dumps(draw(st.sampled_from([moment.isoformat() + "Z", moment.isoformat(),
                                                  str(int(moment.replace(tzinfo=UTC).timestamp()))])))
    return draw(any_token)


@st.composite
def line(draw, unit):
    """One JSON line: mostly an event with some fields odd, sometimes plain garbage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(any_token, st.binary(max_size=40),
                              st.sampled_from([b"", b" ", b"\t", b"null", b"\xef\xbb\xbf{}", b"{}{}", b"{} {}"])))
    fields = {
        b"event_time": draw(time_token(unit)) if draw(st.booleans()) else str(T0).encode(),
        b"value": draw(number) if draw(st.booleans()) else b"2.5",
        b"region": draw(st.one_of(json_text, ascii_escaped, any_token)) if draw(st.booleans()) else b'"eu"',
        b"key": b'"k"',
        b"event_id": draw(st.one_of(json_text, any_token)),
    }
    pairs = [(k, v) for k, v in fields.items() if draw(st.integers(0, 15))]  # now and then a field is missing
    for _ in range(draw(st.integers(0, 2))):
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from([b"pad", b"event_time", b"region",
                                                                              b"value"])), draw(any_token)))
    space = draw(st.sampled_from([b"", b" ", b"\n", b"\r\n", b"\t"]))
    body = b"{" + b",".join(b'"%s":%s%s' % (k, space, v) for k, v in pairs) + b"}"
    wrap = draw(st.integers(0, 12))
    if wrap == 0:
        body = draw(st.sampled_from([b" ", b"\xef\xbb\xbf", b"\n", b"x"])) + body
    elif wrap == 1:
        body = body + draw(st.sampled_from([b" ", b"\r", b"\n", b"}", b"{}", b",", b"x"]))
    return body


@st.composite
def valid_line(draw, unit):
    """An event the row path accepts, written in one of the many ways JSON allows; now and then
    with an odd token in an ignored field."""
    mul, div = SCALE[unit]
    millis = draw(st.integers(PLAUSIBLE_FROM_MS, MAX_EVENT_TIME_MS - 1))
    record = {
        "event_time": millis // mul if mul > 1 else millis * div + draw(st.integers(0, div - 1)),
        "value": draw(st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6), st.integers(-(2**63), 2**64 - 1),
                                st.floats(allow_nan=False, allow_infinity=False))),
        "region": draw(st.one_of(st.text(alphabet="abcdefXYZ -_/", max_size=8), st.text(max_size=10))),
        "key": draw(st.text(alphabet="abcXYZ019-_ ", max_size=4)),
    }
    if draw(st.booleans()):
        record["event_id"] = draw(st.one_of(st.text(max_size=8), st.none()))
    if draw(st.booleans()):
        record["extra"] = draw(st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
                                            | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3)
                                            | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6))
    style = draw(st.integers(0, 2))
    if style == 0:
        text = orjson.dumps(record)
    elif style == 1:
        text = json.dumps(record, ensure_ascii=True).encode()
    else:
        text = json.dumps(record, ensure_ascii=False, separators=(" , ", " : ")).encode()
    if draw(st.booleans()):
        # An odd token in a field neither path uses: where the two parsers differ most.
        text = text[:-1] + b',"pad":' + draw(st.sampled_from(ODD_NUMBERS + ODD_STRINGS + NESTED)) + b"}"
    return text


@st.composite
def batches(draw):
    unit = draw(st.sampled_from(list(SCALE)))
    rng = random.Random(draw(st.integers(0, 2**32)))
    records = [clean_line(i, rng, unit, uuid_ids=rng.random() < 0.3) for i in range(draw(st.integers(500, 640)))]
    for _ in range(draw(st.integers(0, 4))):
        odd = draw(st.one_of(line(unit), valid_line(unit), valid_line(unit), valid_line(unit)))
        records.insert(draw(st.integers(0, len(records))), odd)
    # Split off a few lines at either end now and then: parts on both sides of MIN_BATCH.
    cuts = sorted({draw(st.integers(0, 20)), len(records) - draw(st.integers(0, 20))}) if draw(st.booleans()) else []
    return unit, [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches())
def test_fast_and_row_paths_agree_on_generated_batches(case):
    unit, parts = case
    schema = EventSchema(time_unit=unit)
    for index, records in enumerate(parts):
        check_batch(records, schema, source=f"part{index}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit=st.sampled_from(list(SCALE)), odd=st.lists(time_token("ms"), min_size=1, max_size=3),
       at=st.integers(0, MIN_BATCH - 1))
def test_any_time_value_in_a_clean_batch_is_judged_alike(unit, odd, at):
    records = clean_batch(MIN_BATCH, unit=unit)
    for offset, token in enumerate(odd):
        records[(at + offset) % MIN_BATCH] = LINE.replace(b"%d" % T0, token)
    check_batch(records, EventSchema(time_unit=unit))


values = st.one_of(st.integers(-(2**65), 2**65), st.floats(), st.booleans(), st.none(), st.text(max_size=5),
                   st.binary(max_size=3), st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))]))
                   | st.datetimes(min_value=datetime(1969, 1, 1), max_value=datetime(2101, 1, 1)),
                   st.dates(), st.decimals(allow_nan=False, places=2, max_value=10**6, min_value=-(10**6)),
                   st.just({"a": 1}), st.just([1]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd=st.lists(st.tuples(st.integers(0, MIN_BATCH - 1), st.sampled_from(list(GOOD)), values), max_size=3),
       unit=st.sampled_from(list(SCALE)), datetimes=st.booleans())
def test_avro_dict_path_agrees_with_the_row_path(odd, unit, datetimes):
    mul, div = SCALE[unit]
    records = [
        {**GOOD, "event_id": f"e{i}",
         "event_time": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=i * 1001)) if datetimes
         else (T0 + i) // mul * div}
        for i in range(MIN_BATCH)
    ]
    for at, name, value in odd:
        records[at] = {**records[at], name: value}
    _, _, fast = check_batch(records, EventSchema(time_unit=unit), "avro")
    if not odd:
        assert fast, "a clean batch of Avro dicts must take the fast path"
