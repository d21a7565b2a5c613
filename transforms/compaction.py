"""Store-independent compaction logic: which partitions are closed, which files they hold, and how
the files of one partition merge into few deterministic files (pipelines/compact.py does the I/O).

A partition directory (`dt=YYYY-MM-DD/hour=HH[/region=R]`, values encoded as in
transforms/partition_paths.py) is merged into `part-compacted-<digest>-<i>of<n>.<ext>`: every row
of every input file, unchanged, sorted as the writer sorts them (time first), in the partition's
own format, split into `n` parts of at most the target size. `digest` is the SHA-256 of the
parts' bytes, so the same rows always give the same names and bytes, and a partition whose files
are exactly one complete set of such parts is already compact.

While a partition is being compacted, a plan `_compaction.json` in its directory names the input
files (with their sizes) and the output files. It is written before the first output and deleted
after the last input: a run that finds one finishes the deletes when every output exists, and
otherwise removes the partial outputs, so a killed run never leaves a row counted twice or lost.
Readers skip it (a leading `_`, and no table format's extension).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Sequence

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.formats import EXTENSIONS, METRIC_FIELDS, arrow_schema, encode
from transforms.partition_paths import decode

PLAN_NAME = "_compaction.json"
COMPACTED = re.compile(r"^part-compacted-(?P<digest>[0-9a-f]{32})-(?P<part>\d{3,})of(?P<parts>\d{3,})\.(?P<ext>\w+)$")
# Our own temporary files (transforms/sinks.write_atomically names them `.tmp-<uuid>-<name>`): only
# these are ever removed among `.` files, since the writer's in-flight files look the same otherwise.
OWN_TEMPORARY = re.compile(r"^\.tmp-[0-9a-f]{32}-part-compacted-")
FIXED_COLUMNS = ("window_start", "window_end", *(name for name, _ in METRIC_FIELDS), "pane", "pane_index")
FORMAT_OF = {ext: fmt for fmt, ext in EXTENSIONS.items()}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{2}$")


class CompactionError(ValueError):
    """A partition that cannot be merged as it is (mixed formats or dimensions, an unreadable file);
    the message names the file and what to do. Nothing of that partition was changed."""


@dataclass
class Partition:
    """One partition directory of the table, as one listing saw it (names relative to it)."""

    path: str  # relative to the table root, e.g. dt=2026-01-01/hour=00/region=eu-west-1
    files: dict[str, int] = field(default_factory=dict)  # data file name -> size in bytes
    plan: bool = False
    own_temporary: list[str] = field(default_factory=list)
    hour_end: datetime | None = None

    @property
    def bytes(self) -> int:
        return sum(self.files.values())

    def closed(self, now: datetime, older_than: timedelta) -> bool:
        """Whether the partition's hour ended more than `older_than` before `now`."""
        return self.hour_end is not None and self.hour_end + older_than < now

    def compact(self) -> bool:
        """Whether the data files are exactly one file, or one complete set of compacted parts."""
        if len(self.files) <= 1:
            return True
        parts = complete_parts(self.files)
        return parts is not None and len(parts) == len(self.files)


def complete_parts(names: Sequence[str] | dict[str, int]) -> list[str] | None:
    """The names of one complete set of compacted parts among `names` (all of one digest, 1..n), or None."""
    by_digest: dict[str, list[re.Match]] = {}
    for name in names:
        match = COMPACTED.match(name)
        if match:
            by_digest.setdefault(match["digest"], []).append(match)
    for matches in by_digest.values():
        total = int(matches[0]["parts"])
        if sorted(int(m["part"]) for m in matches) == list(range(1, total + 1)) and all(
            int(m["parts"]) == total for m in matches
        ):
            return sorted(m.string for m in matches)
    return None


def _hour_end(values: dict[str, str]) -> datetime | None:
    try:
        day, hour = decode(values["dt"]), decode(values["hour"])
    except (KeyError, ValueError):
        return None
    if not _DATE.match(day) or not _HOUR.match(hour) or int(hour) > 23:
        return None
    try:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return start + timedelta(hours=int(hour) + 1)


def partitions(listing: dict[str, int]) -> dict[str, Partition]:
    """The partition directories in a listing (relative path -> size) of the table root.

    Only directories made of `name=value` segments with dt and hour count; a `_` or `.` directory
    (dead letters, positions) and everything in it is passed over, as readers pass it over."""
    found: dict[str, Partition] = {}
    for relative, size in listing.items():
        directory, _, name = relative.rpartition("/")
        segments = directory.split("/") if directory else []
        if any(s.startswith(("_", ".", "=")) or "=" not in s for s in segments):
            continue
        values = dict(s.split("=", 1) for s in segments)
        if not {"dt", "hour"} <= values.keys():
            continue
        partition = found.get(directory)
        if partition is None:
            partition = found[directory] = Partition(directory, hour_end=_hour_end(values))
        if name == PLAN_NAME:
            partition.plan = True
        elif OWN_TEMPORARY.match(name):
            partition.own_temporary.append(name)
        elif not name.startswith(("_", ".")) and name.rpartition(".")[2] in FORMAT_OF:
            partition.files[name] = size
    return {path: p for path, p in found.items() if p.files or p.plan or p.own_temporary}


# --- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one compaction of a partition replaces (input name -> size) with what (output names)."""

    inputs: dict[str, int]
    outputs: tuple[str, ...]

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {"version": 1, "inputs": self.inputs, "outputs": list(self.outputs)}, option=orjson.OPT_SORT_KEYS
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Plan:
        try:
            doc = orjson.loads(data)
            return cls({str(k): int(v) for k, v in doc["inputs"].items()}, tuple(str(o) for o in doc["outputs"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise CompactionError(
                f"{where} is not a compaction plan ({type(err).__name__}: {err}); it is written by "
                "`python -m pipelines.compact` only. Check that every output it should name exists, then delete it."
            ) from None

    def leftover_inputs(self, files: dict[str, int]) -> list[str]:
        """The plan's inputs still present with the size they had: replaced by the outputs, to delete."""
        return sorted(n for n, size in self.inputs.items() if files.get(n) == size and n not in self.outputs)

    def partial_outputs(self, files: dict[str, int]) -> list[str]:
        """The outputs present when some are missing (a run stopped while writing them), else []."""
        present = [n for n in self.outputs if n in files]
        return [] if len(present) == len(self.outputs) else sorted(n for n in present if n not in self.inputs)


# --- reading and merging ------------------------------------------------------------------------


@dataclass
class Rows:
    """The rows of one partition's files, in one format, with their dimension columns."""

    output_format: str
    dimensions: tuple[str, ...] | None = None
    rows: list[tuple[tuple, Any]] = field(default_factory=list)  # (sort key, row: dict, or a jsonl line)

    def add(self, name: str, data: bytes) -> None:
        try:
            dims, rows = _READERS[self.output_format](data)
        except (ValueError, TypeError, KeyError, EOFError, pa.ArrowException) as err:
            raise CompactionError(
                f"{name} is not a readable {self.output_format} aggregate file ({type(err).__name__}: {err}); "
                "move it out of the partition (or into a directory whose name starts with _), then rerun."
            ) from None
        if dims is None:  # an empty file: no rows, nothing to check
            return
        if self.dimensions is None:
            self.dimensions = dims
        elif dims != self.dimensions:
            raise CompactionError(
                f"{name} has the dimensions {list(dims)} but other files of its partition have "
                f"{list(self.dimensions)}; such files cannot share one file. Leave the partition as it is or "
                "move one set of files elsewhere."
            )
        order = row_order(dims)
        self.rows += [(order(row), line) for row, line in rows]

    def merged(self, target_bytes: int) -> list[tuple[str, bytes]]:
        """[(name, bytes)] of the compacted parts: every row, sorted, split to at most target_bytes."""
        self.rows.sort(key=lambda pair: pair[0])
        payloads = [payload for _, payload in self.rows]
        if self.output_format == "jsonl":
            parts = split_parts(payloads, b"".join, target_bytes)
        else:
            dims = self.dimensions or ()
            parts = split_parts(payloads, lambda rows: encode(rows, self.output_format, dims), target_bytes)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(hashlib.sha256(part).digest())
        name = digest.hexdigest()[:32]
        ext = EXTENSIONS[self.output_format]
        return [(f"part-compacted-{name}-{i:03d}of{len(parts):03d}.{ext}", p) for i, p in enumerate(parts, 1)]


def row_order(dims: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple]:
    """The writer's row order (transforms/sinks.py): window, dimensions, pane index; then the whole
    row, so that the order never depends on which file a row came from."""

    def key(row: dict[str, Any]) -> tuple:
        return (
            row["window_start"],
            row["window_end"],
            *(row[d] for d in dims),
            row["pane_index"],
            orjson.dumps(row, option=orjson.OPT_SORT_KEYS),
        )

    return key


def _dimensions(columns: Sequence[str]) -> tuple[str, ...]:
    missing = [c for c in FIXED_COLUMNS if c not in columns]
    if missing:
        raise KeyError(f"no {', '.join(missing)} column")
    return tuple(c for c in columns if c not in FIXED_COLUMNS)


def _jsonl(data: bytes) -> tuple[tuple[str, ...] | None, list[tuple[dict[str, Any], bytes]]]:
    # Lines are kept byte for byte (the row is parsed only for its order): merged rows are the originals.
    rows = [(orjson.loads(line), line + b"\n") for line in data.splitlines() if line.strip()]
    if not rows:
        return None, []
    dims = _dimensions(list(rows[0][0]))
    for row, _ in rows:
        if _dimensions(list(row)) != dims:
            raise ValueError("lines with different columns")
    return dims, rows


def _parquet(data: bytes) -> tuple[tuple[str, ...] | None, list[tuple[dict[str, Any], dict[str, Any]]]]:
    table = pq.read_table(io.BytesIO(data))
    dims = _dimensions(table.schema.names)
    if not table.schema.equals(arrow_schema(dims)):
        raise ValueError(f"the schema {table.schema} is not the aggregate schema of transforms/formats.py")
    rows = table.to_pylist()
    return (dims if rows else None), [(row, row) for row in rows]


def _avro(data: bytes) -> tuple[tuple[str, ...] | None, list[tuple[dict[str, Any], dict[str, Any]]]]:
    reader = fastavro.reader(io.BytesIO(data))
    dims = _dimensions([f["name"] for f in reader.writer_schema["fields"]])
    rows = list(reader)
    return (dims if rows else None), [(row, row) for row in rows]


_READERS: dict[str, Callable[[bytes], tuple[tuple[str, ...] | None, list[tuple[dict[str, Any], Any]]]]] = {
    "jsonl": _jsonl,
    "parquet": _parquet,
    "avro": _avro,
}


def split_parts(payloads: list[Any], encode_rows: Callable[[list[Any]], bytes], target_bytes: int) -> list[bytes]:
    """`payloads` encoded as one file, or as the fewest equal runs of rows whose files each stay
    within `target_bytes` (a target below one file's fixed overhead gives parts of one row)."""
    whole = encode_rows(payloads)
    if len(whole) <= target_bytes or len(payloads) <= 1:
        return [whole]
    # What every file costs whatever its rows (header, schema, footer), estimated from a one-row file.
    overhead = max(0, min(len(encode_rows(payloads[:1])) - len(whole) // len(payloads), len(whole) - 1))
    room = target_bytes - overhead
    parts = len(payloads) if room <= 0 else math.ceil((len(whole) - overhead) / room)
    while True:
        size = math.ceil(len(payloads) / parts)
        data = [encode_rows(payloads[i : i + size]) for i in range(0, len(payloads), size)]
        largest = max(len(d) for d in data)
        if largest <= target_bytes or size == 1:
            return data
        # Uneven rows or compression: more, smaller parts, in proportion to the excess.
        parts = max(parts + 1, math.ceil(parts * (largest - overhead) / max(room, 1)))


def format_of(names: Sequence[str], partition: str) -> str:
    """The one output format of a partition's data files (CompactionError when they mix formats)."""
    formats = sorted({FORMAT_OF[name.rpartition(".")[2]] for name in names})
    if len(formats) != 1:
        raise CompactionError(
            f"{partition} holds files of several formats ({', '.join(formats)}); a compacted file has one "
            "format. Move the files of the other formats out of the partition, then rerun."
        )
    return formats[0]
