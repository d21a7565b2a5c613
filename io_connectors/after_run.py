"""Work a local run holds until it has succeeded: resume positions to store, acknowledgements and
offset commits to send.

The local in-memory DirectRunner finalizes a read bundle as soon as the read stage has processed
it, but writes windows only after the whole read; and it keeps its checkpoints in memory. So on
that runner the readers hand what must wait to an `AfterRun` object, and the code that ran the
job calls `commit()` once `wait_until_finish()` has returned without an error, or `abandon()`
otherwise. A killed or failed run commits nothing: its records are read again by the next run.

The object is passed to the connectors when the graph is built. Readers run on pickled copies
of it; in the process that made it, a copy resolves to the original, so what the readers hold
reaches the code that commits. In another process (a worker) a copy holds nothing and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
import weakref
from typing import Any, Callable, Protocol, TypeVar

from io_connectors import positions

LOG = logging.getLogger(__name__)


class Held(Protocol):
    """What a connector holds until the run succeeds (acks, offsets): sent by `commit`, dropped by `close`."""

    def commit(self) -> None: ...

    def close(self) -> None: ...


H = TypeVar("H", bound=Held)

_LIVE: weakref.WeakValueDictionary[str, AfterRun] = weakref.WeakValueDictionary()


def _attach(run_id: str) -> AfterRun:
    found = _LIVE.get(run_id)
    return found if found is not None else AfterRun(run_id, detached=True)


class AfterRun:
    """Positions and held work of one run, committed by whoever ran it, once it succeeded."""

    def __init__(self, run_id: str | None = None, *, detached: bool = False) -> None:
        self.run_id = run_id or uuid.uuid4().hex
        self.detached = detached
        self._lock = threading.Lock()
        self._stores: dict[str, tuple[str, dict[str, str]]] = {}
        self._held: dict[str, Held] = {}
        self._started: dict[str, dict[str, str]] = {}  # store -> the positions this run starts from
        self._done = False
        if not detached:
            _LIVE[self.run_id] = self

    def __reduce__(self) -> tuple:
        return _attach, (self.run_id,)

    def track(self, store: str, source: str) -> None:
        """Keeps the position store `store` of `source`, starting from what it holds now."""
        committed = positions.load_positions(store)
        with self._lock:
            self._stores.setdefault(store, (source, dict(committed)))
            self._started.setdefault(store, dict(committed))

    def record(self, store: str, key: str, position: str) -> None:
        """Notes the last claimed position of shard or partition `key` in `store`."""
        with self._lock:
            entry = self._stores.get(store)
            if entry is None:
                if not self.detached:
                    raise KeyError(f"position store {store} is not tracked by this run; call track() first")
                return
            entry[1][key] = position

    def hold(self, key: str, make: Callable[[], H]) -> H:
        """The holder registered under `key`, made by `make` on first use."""
        with self._lock:
            if self.detached:
                raise RuntimeError(
                    "this reader runs in another process than the one that runs the job, so it cannot hold "
                    "acknowledgements until the run ends; use --direct_running_mode=in_memory"
                )
            holder = self._held.get(key)
            if holder is None:
                holder = self._held[key] = make()
            return holder  # type: ignore[return-value]

    def start_key(self) -> str:
        """A short digest of where this run's tracked reads start: the same for a re-run after a
        failure (nothing was committed), a new one once a run has committed; "" when no read is
        tracked (no --resume)."""
        with self._lock:
            started = sorted((store, sorted(found.items())) for store, found in self._started.items())
        if not started:
            return ""
        return hashlib.sha256(json.dumps(started).encode()).hexdigest()[:12]

    def positions(self, store: str) -> dict[str, str]:
        """What `commit` would write to `store` (for tests and logs)."""
        with self._lock:
            return dict(self._stores.get(store, ("", {}))[1])

    def commit(self) -> None:
        """The run succeeded: write every position store, then send what is held."""
        with self._lock:
            if self._done:
                return
            self._done = True
            stores, held = dict(self._stores), list(self._held.values())
        for path, (source, found) in stores.items():
            positions.save_positions(path, source, found)
        for holder in held:
            try:
                holder.commit()
            except Exception:  # noqa: BLE001 - one failing holder must not stop the others
                LOG.exception("after run: a held acknowledgement or commit failed")

    def abandon(self) -> None:
        """The run failed or was stopped: commit nothing, release what is held."""
        with self._lock:
            if self._done:
                return
            self._done = True
            held = list(self._held.values())
        if self._stores:
            LOG.warning("the run did not finish cleanly; no read position was stored")
        for holder in held:
            holder.close()


def run_and_commit(result: Any, after_run: AfterRun) -> Any:
    """Waits for a started pipeline; commits `after_run` only if it finished without an error."""
    try:
        state = result.wait_until_finish()
    except BaseException:
        after_run.abandon()
        raise
    if str(state).upper().endswith("DONE") or state is None:
        after_run.commit()
    else:
        after_run.abandon()
    return state
