"""Bytes -> events, column-wise per batch, with every failure sent to dead letters.

A record that cannot be decoded becomes a dead-letter dict
`{"error": reason, "payload" | "payload_b64": raw, "source": position}`; the pipeline never
dies on bad input and never drops a record silently.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import Any

import fastavro
import orjson

from io_connectors.records import RawBatch, ReadFailure
from io_connectors.timestamps import to_epoch_millis

# Event times outside [1970, 2100) are almost always unit mistakes (seconds vs millis,
# micros) or corrupt clocks; they would open windows nobody queries.
MIN_EVENT_TIME_MS = 0
MAX_EVENT_TIME_MS = 4_102_444_800_000
# Larger records are refused rather than parsed: a single runaway record must not stall a batch.
MAX_RECORD_BYTES = 1 << 20
AVRO_CONTAINER_MAGIC = b"Obj\x01"


@dataclass(frozen=True)
class EventSchema:
    """Which fields of an input record carry the event time, id, value and dimensions."""

    event_time_field: str = "event_time"
    id_field: str = "event_id"
    value_field: str = "value"
    dimensions: tuple[str, ...] = ("region", "key")
    # Unit of numeric event times: ms, s, us or ns (ISO-8601 strings carry their own).
    time_unit: str = "ms"


@dataclass
class EventColumns:
    """Decoded events of one batch, column-wise (cheaper than one object per event)."""

    times_ms: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    dims: list[tuple[str, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times_ms)


class DecodeError(ValueError):
    """Raised for one record; the message becomes the dead-letter reason."""


def parse_event_time(raw: Any, field_name: str) -> int:
    """Epoch millis (int/float or digit string) or ISO-8601 (naive means UTC) -> epoch millis."""
    if isinstance(raw, bool) or raw is None:
        raise DecodeError(f"field {field_name!r} is {raw!r}; expected epoch millis or an ISO-8601 string")
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise DecodeError(f"field {field_name!r} is {raw!r}; expected a finite epoch-millis number")
        millis = int(raw)
    elif isinstance(raw, str):
        try:
            millis = to_epoch_millis(raw)
        except ValueError:
            raise DecodeError(
                f"field {field_name!r} is {raw!r}; expected epoch millis or ISO-8601 like 2026-01-01T00:00:00Z"
            ) from None
    else:
        raise DecodeError(f"field {field_name!r} has type {type(raw).__name__}; expected epoch millis or ISO-8601")
    if not MIN_EVENT_TIME_MS <= millis < MAX_EVENT_TIME_MS:
        raise DecodeError(
            f"field {field_name!r} = {raw!r} is outside 1970..2100; is it in seconds or microseconds instead of millis?"
        )
    return millis


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
        record["payload"] = orjson.dumps(payload, default=repr, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    return record


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
        try:
            if raw[:4] == AVRO_CONTAINER_MAGIC:
                records = list(fastavro.reader(io.BytesIO(raw)))
                if len(records) != 1:
                    raise DecodeError(f"Avro container record holds {len(records)} records; expected exactly 1")
                return records[0]
            if self._avro_schema is None:
                raise DecodeError("schemaless Avro record but no --avro_schema given; pass the writer's schema (.avsc)")
            return fastavro.schemaless_reader(io.BytesIO(raw), self._avro_schema)
        except DecodeError:
            raise
        except (ValueError, TypeError, EOFError, IndexError, KeyError, UnicodeDecodeError, OverflowError) as err:
            raise DecodeError(f"invalid Avro: {type(err).__name__}: {err}") from None

    def _append(self, record: dict, columns: EventColumns) -> None:
        schema = self.schema
        if schema.event_time_field not in record:
            raise DecodeError(f"missing event time field {schema.event_time_field!r}")
        millis = parse_event_time(record[schema.event_time_field], schema.event_time_field)
        value = record.get(schema.value_field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if value is None:
                raise DecodeError(f"missing value field {schema.value_field!r}")
            raise DecodeError(f"value field {schema.value_field!r} is {value!r}; expected a number")
        value = float(value)
        if not math.isfinite(value):
            raise DecodeError(f"value field {schema.value_field!r} is {value}; expected a finite number")
        dims = []
        for name in schema.dimensions:
            dim = record.get(name)
            if dim is None or isinstance(dim, (dict, list)):
                raise DecodeError(f"dimension field {name!r} is missing or not a scalar")
            dims.append(dim if isinstance(dim, str) else str(dim))
        event_id = record.get(schema.id_field)
        columns.times_ms.append(millis)
        columns.values.append(value)
        columns.dims.append(tuple(dims))
        columns.ids.append(None if event_id is None else str(event_id))
