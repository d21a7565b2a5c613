"""Avro writer schemas that would let a few bytes claim unbounded work are refused before any
record is decoded.

An Avro array is a count followed by that many items; when an item can encode to zero bytes
(null, fixed of size 0, a record whose fields all take zero bytes) a varint of a few bytes
claims billions of items and the decoder builds a list of them all. A container block likewise
claims a record count: when a record can encode to zero bytes, no block size bounds it. A
recursive schema lets every byte add a level of nesting, which overflows the stacks of the
decoder and of everything that later walks the value. None of this is needed by real data, so
such schemas are refused (`check_schema`), and an accepted schema yields the bounds a reader
needs: every value takes at least `min_bytes`, and a decoded value takes at most `expansion`
bytes of Python memory per encoded byte.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any

# Values nest at most this deep (records, arrays and maps each add a level): far beyond real
# schemas, far below what recursive pickling, repr and JSON writing of the value can take.
MAX_SCHEMA_DEPTH = 64
# Python memory of one decoded value per encoded byte, at worst, by primitive type. Empty and
# one-character strings and bytes, booleans, small ints and enum symbols are shared objects;
# the rest are one object each (an int of 1 byte can be a 28-byte object).
_PRIMITIVES: dict[str, tuple[int, float]] = {  # name: (minimum encoded bytes, memory per byte)
    "null": (0, 0.0),
    "boolean": (1, 0.0),
    "int": (1, 28.0),
    "long": (1, 28.0),
    "float": (4, 6.0),
    "double": (8, 3.0),
    "string": (1, 19.0),  # (49 + 4n) / (n + 1) for n >= 2 characters, at worst UCS-4
    "bytes": (1, 12.0),  # (33 + n) / (n + 1) for n >= 2
}
_NAMED = ("record", "error", "enum", "fixed")
# The longest decimal decoded: 32 bytes hold 76 digits (38, the usual maximum precision, needs 16).
MAX_DECIMAL_BYTES = 32
# A logical type (datetime, Decimal, UUID, date) is one more object per value.
_LOGICAL_OBJECT = 128
_LIST_HEADER = 56
_LIST_SLOT = 9  # a pointer, with over-allocation
_DICT_HEADER = 64
_DICT_ENTRY = 50  # index, entry and spare room of one map entry
_IN_PROGRESS = object()


class UnsafeAvroSchema(ValueError):
    """A writer schema that is refused; the message says why and what to do."""


@dataclass(frozen=True)
class SchemaBounds:
    """What an accepted schema guarantees: each value encodes to at least `min_bytes` bytes,
    and decodes to at most `expansion` bytes of Python memory per encoded byte."""

    min_bytes: int
    expansion: float


@dataclass(frozen=True)
class _Info:
    min_bytes: int
    per_byte: float  # memory per encoded byte ...
    fixed: float  # ... plus this much per value
    zero_byte: str = ""  # what a zero-byte value is, for reasons


def check_schema(schema: Any) -> SchemaBounds:
    """The bounds of a writer schema (parsed JSON or fastavro's parsed form); raises
    UnsafeAvroSchema when it allows unbounded work per byte or is not valid Avro."""
    walker = _Walker(_schema_name(schema))
    try:
        info = walker.walk(schema, "", "the top level", 0)
    except RecursionError:
        raise UnsafeAvroSchema(walker.too_deep()) from None
    if info.min_bytes == 0:
        raise UnsafeAvroSchema(
            f"schema {walker.top} encodes a whole record in zero bytes ({info.zero_byte}), which lets a few "
            "bytes claim billions of records; such files are not read: give the record a field that takes "
            "at least one byte (say an int or a string)"
        )
    return SchemaBounds(info.min_bytes, info.per_byte + info.fixed / info.min_bytes)


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is refused, or None when it is accepted."""
    try:
        check_schema(schema)
    except UnsafeAvroSchema as err:
        return str(err)
    return None


def _schema_name(schema: Any) -> str:
    if isinstance(schema, dict) and isinstance(schema.get("name"), str):
        return repr(schema["name"][:100])
    if isinstance(schema, str):
        return repr(schema[:100])
    return f"of type {type(schema).__name__}"


@functools.lru_cache(maxsize=256)
def _dict_bytes(fields: int) -> int:
    """Memory of a decoded record: a dict built by inserting `fields` keys."""
    built: dict[int, None] = {}
    for key in range(fields):
        built[key] = None
    return sys.getsizeof(built)


class _Walker:
    def __init__(self, top: str) -> None:
        self.top = top
        self._named: dict[str, Any] = {}

    def too_deep(self) -> str:
        return (
            f"schema {self.top} nests values more than {MAX_SCHEMA_DEPTH} levels deep, which lets a record "
            "nest deeper than it can be processed; such files are not read: flatten the schema"
        )

    def walk(self, schema: Any, namespace: str, where: str, depth: int) -> _Info:
        if depth > MAX_SCHEMA_DEPTH:
            raise UnsafeAvroSchema(self.too_deep())
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema)
            return self._reference(schema, namespace, where)
        if isinstance(schema, list):
            return self._union(schema, namespace, where, depth)
        if not isinstance(schema, dict):
            raise UnsafeAvroSchema(self._invalid(f"{where} is a {type(schema).__name__}, not a type"))
        kind = schema.get("type")
        if isinstance(kind, (list, dict)):
            info = self.walk(kind, namespace, where, depth)
        elif not isinstance(kind, str):
            raise UnsafeAvroSchema(self._invalid(f"{where} has no type"))
        elif kind in _PRIMITIVES:
            info = self._primitive(kind)
        elif kind in ("record", "error"):
            info = self._record(schema, namespace, where, depth)
        elif kind == "enum":
            info = self._define(schema, namespace, where, _Info(1, 0.0, 0.0))
        elif kind == "fixed":
            size = schema.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise UnsafeAvroSchema(self._invalid(f"the fixed type at {where} has size {size!r}"))
            fixed = _Info(size, (33 + size) / size if size else 0.0, 0.0, "a fixed of size 0" if not size else "")
            info = self._define(schema, namespace, where, fixed)
        elif kind == "array":
            info = self._array(schema.get("items"), namespace, where, depth)
        elif kind == "map":
            info = self._map(schema.get("values"), namespace, where, depth)
        else:
            info = self._reference(kind, namespace, where)
        if "logicalType" in schema:
            if schema["logicalType"] == "decimal" and not (kind == "fixed" and schema["size"] <= MAX_DECIMAL_BYTES):
                # fastavro turns every decimal into a Python Decimal, in time quadratic in its length,
                # and bytes have no bound: a few KiB of input would hold the run for hours.
                raise UnsafeAvroSchema(
                    f"schema {self.top} has a decimal at {where} that is not a fixed of at most {MAX_DECIMAL_BYTES} "
                    "bytes: decoding a long decimal takes time quadratic in its length, so a few kilobytes could "
                    f"stall the run; such files are not read: write it as a fixed of at most {MAX_DECIMAL_BYTES} "
                    "bytes, a string or a double"
                )
            info = _Info(info.min_bytes, info.per_byte, info.fixed + _LOGICAL_OBJECT, info.zero_byte)
        return info

    @staticmethod
    def _primitive(name: str) -> _Info:
        min_bytes, per_byte = _PRIMITIVES[name]
        return _Info(min_bytes, per_byte, 0.0, "null" if name == "null" else "")

    def _invalid(self, what: str) -> str:
        return f"schema {self.top} is not valid Avro: {what}; fix the writer's schema"

    def _full_name(self, schema: dict, namespace: str, where: str) -> tuple[str, str]:
        """(full name, namespace for what the type contains)."""
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            raise UnsafeAvroSchema(self._invalid(f"the {schema.get('type')} type at {where} has no name"))
        explicit = schema.get("namespace")
        if "." in name:
            full = name
        elif isinstance(explicit, str) and explicit:
            full = f"{explicit}.{name}"
        else:
            full = f"{namespace}.{name}" if namespace else name
        return full, full.rpartition(".")[0]

    def _define(self, schema: dict, namespace: str, where: str, info: _Info) -> _Info:
        full, _ = self._full_name(schema, namespace, where)
        self._named[full] = info
        return info

    def _reference(self, name: str, namespace: str, where: str) -> _Info:
        candidates = [name] if "." in name else ([f"{namespace}.{name}", name] if namespace else [name])
        for full in candidates:
            if full in self._named:
                found = self._named[full]
                if found is _IN_PROGRESS:
                    raise UnsafeAvroSchema(
                        f"schema {self.top} is recursive: type {full[:100]!r} can hold another {full[:100]!r} "
                        f"({where}), which lets a few bytes nest values thousands deep; such files are not read: "
                        "write the data with a schema of bounded depth"
                    )
                return found
        raise UnsafeAvroSchema(self._invalid(f"{where} names type {name[:100]!r}, which it does not define"))

    def _record(self, schema: dict, namespace: str, where: str, depth: int) -> _Info:
        full, inner = self._full_name(schema, namespace, where)
        fields = schema.get("fields")
        if not isinstance(fields, list):
            raise UnsafeAvroSchema(self._invalid(f"record {full[:100]!r} has no list of fields"))
        self._named[full] = _IN_PROGRESS
        min_bytes, per_byte, fixed = 0, 0.0, float(_dict_bytes(len(fields)))
        for entry in fields:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise UnsafeAvroSchema(self._invalid(f"record {full[:100]!r} has a field without a name"))
            field = self.walk(entry.get("type"), inner, f"field {entry['name'][:100]!r} of {full[:100]!r}", depth + 1)
            min_bytes += field.min_bytes
            per_byte = max(per_byte, field.per_byte)
            fixed += field.fixed
        zero = f"record {full[:100]!r}, whose fields all take zero bytes" if not min_bytes else ""
        info = _Info(min_bytes, per_byte, fixed, zero)
        self._named[full] = info
        return info

    def _union(self, branches: list, namespace: str, where: str, depth: int) -> _Info:
        if not branches:
            raise UnsafeAvroSchema(self._invalid(f"{where} is a union of no types"))
        per_byte = 0.0
        smallest = None
        for branch in branches:
            info = self.walk(branch, namespace, where, depth)
            # The branch index takes at least one byte, which carries the branch's own fixed cost.
            per_byte = max(per_byte, info.per_byte + info.fixed / (1 + info.min_bytes))
            smallest = info.min_bytes if smallest is None else min(smallest, info.min_bytes)
        return _Info(1 + (smallest or 0), per_byte, 0.0)

    def _array(self, items: Any, namespace: str, where: str, depth: int) -> _Info:
        item = self.walk(items, namespace, f"the items of the array at {where}", depth + 1)
        if item.min_bytes == 0:
            raise UnsafeAvroSchema(
                f"schema {self.top} has an array of {_items_text(item)} ({where}), which lets a few bytes "
                "claim billions of items; such files are not read: give the array items a type that takes "
                "at least one byte (say boolean or int), or drop the array"
            )
        # The closing zero count takes one byte and pays for the list itself.
        per_byte = item.per_byte + (_LIST_SLOT + item.fixed) / item.min_bytes + _LIST_HEADER
        return _Info(1, per_byte, 0.0)

    def _map(self, values: Any, namespace: str, where: str, depth: int) -> _Info:
        # Every entry has a key of at least one byte (its length), so a count is bounded by the
        # bytes that follow it even when values take zero bytes (map<null> is a set of strings).
        value = self.walk(values, namespace, f"the values of the map at {where}", depth + 1)
        entry = 1 + value.min_bytes
        per_byte = max(_PRIMITIVES["string"][1], value.per_byte) + (_DICT_ENTRY + value.fixed) / entry + _DICT_HEADER
        return _Info(1, per_byte, 0.0)


def _items_text(item: _Info) -> str:
    if item.zero_byte == "null":
        return "null items"
    if item.zero_byte:
        return f"items that take zero bytes ({item.zero_byte})"
    return "items that take zero bytes"
