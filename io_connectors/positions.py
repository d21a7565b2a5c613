"""Resumable read positions for runners that keep no checkpoint across processes.

The local DirectRunner keeps its checkpoints in memory: a killed run forgets them. With
`--resume`, a stream reader starts each shard or partition after the position stored in
`<output>/_positions/<source-hash>.json`, and records every position it claims in this
process. The positions are committed (written atomically: a temporary file, then a rename) by
`io_connectors.after_run.AfterRun.commit`, which the code that ran the job calls once the
pipeline finished without an error. By then every claimed record has been decoded,
aggregated and written, so a stored position never runs ahead of the output: a killed or
failed run commits nothing and the next `--resume` run reads again everything since the
last successful run.

Guarantee: every record is counted by exactly one successful run, provided the runs see
disjoint windows (see docs/reliability.md for windows that span two runs). Real runners
(Dataflow, Flink) checkpoint themselves and ignore this store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid

from apache_beam.io.filesystems import FileSystems

LOG = logging.getLogger(__name__)
STORE_DIR = "_positions"
VERSION = 1


class PositionStoreError(RuntimeError):
    """The position store cannot be used; the message says which file or option and what to do."""


def store_path(output: str, source_uri: str) -> str:
    """`<output>/_positions/<sha256(source)[:16]>.json`: one file per source and output."""
    digest = hashlib.sha256(source_uri.encode()).hexdigest()[:16]
    return f"{output.rstrip('/')}/{STORE_DIR}/{digest}.json"


def load_positions(path: str) -> dict[str, str]:
    """Committed positions by shard/partition id; empty when nothing was committed yet."""
    if not FileSystems.exists(path):
        return {}
    try:
        with FileSystems.open(path) as handle:
            document = json.loads(handle.read())
        positions = document["positions"]
        if not isinstance(positions, dict):
            raise TypeError("positions is not an object")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PositionStoreError(
            f"the position store {path} is unreadable ({err}); delete it to read from the start position, "
            "or run without --resume."
        ) from None
    return {str(k): str(v) for k, v in positions.items()}


def save_positions(path: str, source: str, positions: dict[str, str]) -> None:
    """Writes the positions to a temporary sibling, then renames it over `path`."""
    directory = path.rpartition("/")[0]
    if not FileSystems.exists(directory):
        FileSystems.mkdirs(directory)
    temp = f"{directory}/.tmp-{uuid.uuid4().hex}.json"
    body = json.dumps({"version": VERSION, "source": source, "positions": positions}, sort_keys=True, indent=1)
    with FileSystems.create(temp, mime_type="application/json") as handle:
        handle.write(body.encode())
    FileSystems.rename([temp], [path])


def unbounded_message(read_to_latest_option: str) -> str:
    """Why --resume needs a bounded read, naming the source's own read-to-latest option."""
    return (
        f"--resume commits positions when a run finishes; bound the read with {read_to_latest_option}, "
        "--max_read_time or --max_records."
    )


def resume_store(output: str, source: str, bounded: bool, read_to_latest_option: str) -> str:
    """--resume: the store of `source` under `output`, checked readable.

    Raises PositionStoreError for an unbounded read (it would never finish, so never commit)
    and for an unreadable store."""
    if not bounded:
        raise PositionStoreError(unbounded_message(read_to_latest_option))
    path = store_path(output, source)
    load_positions(path)
    return path
