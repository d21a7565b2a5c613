"""Bytes -> events, column-wise per batch, with every failure sent to dead letters.

A record that cannot be decoded becomes a dead-letter dict
`{"error": reason, "payload" | "payload_b64": raw, "source": position}`; the pipeline never
dies on bad input and never drops a record silently.
"""

from __future__ import annotations

import base64
import io
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any

import fastavro
import orjson

from io_connectors.avro_blocks import container_record
from io_connectors.avro_safety import UnsafeAvroSchema, schema_problem
from io_connectors.records import MAX_RECORD_BYTES, RawBatch, ReadFailure
from io_connectors.timestamps import (  # noqa: F401 - re-exported: the decoder's own vocabulary
    MAX_EVENT_TIME_MS,
    MIN_EVENT_TIME_MS,
    PLAUSIBLE_FROM_MS,
    TIME_UNITS,
    UNIT_NAMES,
    DecodeError,
    _shown,
    datetime_millis,
    parse_event_time,
    to_millis,
)

AVRO_CONTAINER_MAGIC = b"Obj\x01"
_UNCHECKED = object()


@dataclass(frozen=True)
class EventSchema:
    """Which fields of an input record carry the event time, id, value and dimensions."""

    event_time_field: str = "event_time"
    id_field: str = "event_id"
    value_field: str = "value"
    dimensions: tuple[str, ...] = ("region", "key")
    # Unit of numeric event times: ms, s, us or ns (ISO-8601 strings carry their own).
    time_unit: str = "ms"

    def __post_init__(self) -> None:
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"event time unit {self.time_unit!r} is not supported; use one of {', '.join(TIME_UNITS)}")


@dataclass
class EventColumns:
    """Decoded events of one batch, column-wise (cheaper than one object per event)."""

    times_ms: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    dims: list[tuple[str, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times_ms)


def dead_letter(reason: str, payload: Any, position: str) -> dict[str, Any]:
    """The dead-letter record: payload as text where it is UTF-8, else base64."""
    record: dict[str, Any] = {"error": reason, "source": position}
    if isinstance(payload, (bytes, bytearray, memoryview)):
        data = bytes(payload)
        try:
            record["payload"] = data.decode("utf-8")
        except UnicodeDecodeError:
            record["payload_b64"] = base64.b64encode(data).decode("ascii")
    elif isinstance(payload, str):
        record["payload"] = payload
    else:
        try:
            record["payload"] = orjson.dumps(payload, default=repr, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
        except (TypeError, ValueError, RecursionError):
            # What orjson cannot write even with repr (an int beyond 64 bits, deep nesting): a
            # repr bounded in depth and length, since a dead letter must never fail.
            record["payload"] = bounded_repr(payload)
    return record


class _BoundedRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # over Python's limit on digits to print
            return f"<int of {x.bit_length()} bits>"


_BOUNDED_REPR = _BoundedRepr()
_BOUNDED_REPR.maxlevel = 12
_BOUNDED_REPR.maxdict = _BOUNDED_REPR.maxlist = _BOUNDED_REPR.maxtuple = _BOUNDED_REPR.maxset = 100
_BOUNDED_REPR.maxstring = _BOUNDED_REPR.maxother = 1024
_BOUNDED_REPR.maxlong = 100
# A dead letter's repr of an unserialisable payload is cut at this many characters.
MAX_PAYLOAD_REPR = 4096


def bounded_repr(value: Any, limit: int = MAX_PAYLOAD_REPR) -> str:
    """repr of any value, bounded in depth and cut at `limit` characters; never raises."""
    try:
        text = _BOUNDED_REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile value's repr may raise anything (an int over 4300 digits)
        text = f"<{type(value).__name__} that cannot be shown>"
    return text if len(text) <= limit else f"{text[:limit]}... (cut at {limit} characters)"


class Decoder:
    """Decodes RawBatches of JSON or Avro records into EventColumns plus dead letters."""

    def __init__(self, schema: EventSchema, input_format: str = "json", avro_schema: dict | None = None) -> None:
        if input_format not in ("json", "avro"):
            raise ValueError(f"input format {input_format!r} is not supported; use json or avro")
        self.schema = schema
        self.input_format = input_format
        self._avro_schema = fastavro.parse_schema(avro_schema) if avro_schema else None

    def decode(self, batch: RawBatch) -> tuple[EventColumns, list[dict[str, Any]]]:
        columns = EventColumns()
        dead: list[dict[str, Any]] = []
        for index, raw in enumerate(batch.records):
            if isinstance(raw, ReadFailure):
                dead.append(dead_letter(raw.reason, raw.payload, batch.position(index)))
                continue
            try:
                record = raw if isinstance(raw, dict) else self._parse(raw)
                self._append(record, columns)
            except DecodeError as err:
                dead.append(dead_letter(str(err), raw, batch.position(index)))
        return columns, dead

    def _parse(self, raw: Any) -> dict:
        if not isinstance(raw, (bytes, bytearray, memoryview, str)):
            raise DecodeError(f"record has type {type(raw).__name__}; expected bytes or a decoded Avro record")
        if not raw:
            raise DecodeError("empty record")
        if len(raw) > MAX_RECORD_BYTES:
            raise DecodeError(f"record is {len(raw)} bytes, over the {MAX_RECORD_BYTES}-byte limit")
        if self.input_format == "json":
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                raise DecodeError(f"invalid JSON: {err}") from None
        else:
            record = self._parse_avro(raw)
        if not isinstance(record, dict):
            raise DecodeError(f"expected a JSON object, got {type(record).__name__}")
        return record

    def _parse_avro(self, raw: bytes) -> Any:
        if raw[:4] == AVRO_CONTAINER_MAGIC:
            # A whole container file in one record: framed, bounded and schema-checked like a file.
            try:
                total, record = container_record(bytes(raw))
            except UnsafeAvroSchema as err:
                raise DecodeError(f"Avro container record not read: {err}") from None
            except Exception as err:  # noqa: BLE001 - hostile bytes make framing and codecs raise many types
                raise DecodeError(f"invalid Avro: {type(err).__name__}: {err}") from None
            if total != 1:
                raise DecodeError(f"Avro container record holds {total} records; expected exactly 1")
            return record
        if self._avro_schema is None:
            raise DecodeError("schemaless Avro record but no --avro_schema given; pass the writer's schema (.avsc)")
        # Checked once per decoder: a schema that lets a few bytes claim billions of items is never used.
        problem = self.__dict__.get("_avro_schema_problem", _UNCHECKED)
        if problem is _UNCHECKED:
            problem = self.__dict__["_avro_schema_problem"] = schema_problem(self._avro_schema)
        if problem is not None:
            raise DecodeError(f"schemaless Avro record not read: the --avro_schema {problem}")
        try:
            return fastavro.schemaless_reader(io.BytesIO(raw), self._avro_schema)
        except (ValueError, TypeError, EOFError, IndexError, KeyError, UnicodeDecodeError, OverflowError) as err:
            raise DecodeError(f"invalid Avro: {type(err).__name__}: {err}") from None

    def _append(self, record: dict, columns: EventColumns) -> None:
        schema = self.schema
        if schema.event_time_field not in record:
            raise DecodeError(f"missing event time field {schema.event_time_field!r}")
        millis = parse_event_time(record[schema.event_time_field], schema.event_time_field, schema.time_unit)
        value = record.get(schema.value_field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if value is None:
                raise DecodeError(f"missing value field {schema.value_field!r}")
            raise DecodeError(f"value field {schema.value_field!r} is {_shown(value)}; expected a number")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond a double's range (only Avro dicts can hold one)
            value = math.inf
        if not math.isfinite(value):
            raise DecodeError(f"value field {schema.value_field!r} is {value}; expected a finite number")
        dims = []
        for name in schema.dimensions:
            dim = record.get(name)
            if isinstance(dim, str):
                dims.append(dim)
            elif isinstance(dim, int) and not isinstance(dim, bool):
                dims.append(str(dim))  # a whole number is the same group as its decimal text
            elif dim is None or isinstance(dim, (dict, list)):
                raise DecodeError(f"dimension field {name!r} is missing or not a scalar")
            else:
                # As text, 1e2 and 100.0 (or true and "True") would silently become one group.
                raise DecodeError(
                    f"dimension field {name!r} is {_shown(dim)} ({type(dim).__name__}); a dimension must be a "
                    "string or a whole number: have the producer send it as a string"
                )
        event_id = record.get(schema.id_field)
        columns.times_ms.append(millis)
        columns.values.append(value)
        columns.dims.append(tuple(dims))
        columns.ids.append(None if event_id is None else str(event_id))
