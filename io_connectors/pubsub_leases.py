"""Leases on pulled Pub/Sub messages: kept alive until the reader acknowledges them, and held past
bundle finalization until the run succeeds where the runner finalizes before it writes.

Pure client logic with an injectable clock: unit-tested with a fake subscriber client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Sequence

from google.api_core import exceptions as gexc

from io_connectors.read_core import Clock

LOG = logging.getLogger(__name__)
_ACK_CHUNK = 1000  # ack ids per acknowledge/modify request (the API caps request size)


class RecentIds:
    """A bounded set of ids already acknowledged by this worker (drops redelivered duplicates)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def add_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._ids[key] = None
            self._ids.move_to_end(key)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class LeaseKeeper:
    """Holds the ack ids of emitted-but-unfinalized messages and keeps extending their ack
    deadline (every third of it) from a daemon thread, until they are acked, nacked or older
    than `max_lease_s`. It covers the gap between the end of process() and finalization,
    which on Flink or Dataflow lasts until the checkpoint is committed."""

    def __init__(
        self,
        client: Any,
        subscription: str,
        deadline_s: int,
        max_lease_s: float,
        clock: Clock = time.time,
        start_thread: bool = True,
    ) -> None:
        self._client = client
        self._subscription = subscription
        self._deadline_s = deadline_s
        self._max_lease_s = max_lease_s
        self._clock = clock
        self._held: dict[str, float] = {}  # ack id -> time first leased
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = threading.Thread(target=self._run, name="pubsub-lease-keeper", daemon=True)
            self._thread.start()

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def add(self, ack_ids: Sequence[str]) -> None:
        now = self._clock()
        with self._lock:
            for ack_id in ack_ids:
                self._held.setdefault(ack_id, now)
        # The subscription's own deadline may be shorter than ours: set ours at once.
        self._modify(list(ack_ids), self._deadline_s)

    def release(self, ack_ids: Iterable[str]) -> None:
        with self._lock:
            for ack_id in ack_ids:
                self._held.pop(ack_id, None)

    def ack(self, ack_ids: Sequence[str]) -> None:
        self.release(ack_ids)
        for chunk in _chunks(ack_ids):
            self._client.acknowledge(subscription=self._subscription, ack_ids=chunk)

    def nack(self, ack_ids: Sequence[str]) -> None:
        """Hand messages back for immediate redelivery."""
        self.release(ack_ids)
        self._modify(list(ack_ids), 0)

    def extend_all(self) -> int:
        """One lease round: extend every held id, drop those held longer than max_lease_s."""
        now = self._clock()
        with self._lock:
            expired = [a for a, since in self._held.items() if now - since > self._max_lease_s]
            for ack_id in expired:
                del self._held[ack_id]
            live = list(self._held)
        if expired:
            LOG.warning(
                "Pub/Sub: %d messages were never finalized within %.0f s; letting Pub/Sub redeliver them.",
                len(expired),
                self._max_lease_s,
            )
        self._modify(live, self._deadline_s)
        return len(live)

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for chunk in _chunks(ack_ids):
            try:
                self._client.modify_ack_deadline(
                    subscription=self._subscription, ack_ids=chunk, ack_deadline_seconds=seconds
                )
            except gexc.GoogleAPICallError as err:
                # Expired or already-acked ids; the next round or redelivery sorts it out.
                LOG.warning("Pub/Sub modify_ack_deadline failed for %d ids: %s", len(chunk), err)

    def _run(self) -> None:
        interval = max(1.0, self._deadline_s / 3)
        while not self._stop.wait(interval):
            try:
                self.extend_all()
            except Exception as err:  # noqa: BLE001 - the keeper must survive transient errors
                LOG.warning("Pub/Sub lease extension failed: %s", err)

    def close(self) -> None:
        self._stop.set()


class OldestUnacked:
    """The publish time of the oldest message pulled and not yet acknowledged, per bundle, for
    source_lag_ms. A bundle counts as acknowledged when the runner finalizes it (ack_after_run
    reads are done with their messages then too); one never finalized is forgotten after
    `max_lease_s`, when its leases lapse and Pub/Sub delivers its messages again."""

    def __init__(self, max_lease_s: float, clock: Clock = time.time) -> None:
        self._max_lease_s = max_lease_s
        self._clock = clock
        self._bundles: dict[int, tuple[int, float]] = {}  # bundle -> (oldest publish ms, first pulled at)
        self._lock = threading.Lock()  # finalization may run on another thread than process()

    def pulled(self, bundle: int, oldest_publish_ms: int) -> None:
        with self._lock:
            known = self._bundles.get(bundle)
            if known is None:
                self._bundles[bundle] = (oldest_publish_ms, self._clock())
            elif oldest_publish_ms < known[0]:
                self._bundles[bundle] = (oldest_publish_ms, known[1])

    def acknowledged(self, bundle: int) -> None:
        with self._lock:
            self._bundles.pop(bundle, None)

    def age_ms(self) -> float:
        """Now minus the oldest unacknowledged publish time; 0 when every pulled message is acknowledged."""
        now = self._clock()
        with self._lock:
            for bundle in [b for b, (_, since) in self._bundles.items() if now - since > self._max_lease_s]:
                del self._bundles[bundle]
            oldest = min((publish_ms for publish_ms, _ in self._bundles.values()), default=None)
        return 0.0 if oldest is None else max(now * 1000 - oldest, 0.0)


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    items = list(items)
    for start in range(0, len(items), _ACK_CHUNK):
        yield items[start : start + _ACK_CHUNK]


class HeldAcks:
    """Ack ids of finalized bundles of one subscription, held (their deadlines extended) until
    the run succeeds: the holder a reader registers with `AfterRun.hold`.

    The local in-memory DirectRunner finalizes a read bundle as soon as the read stage has
    processed it, but writes windows only after the whole read: acknowledging at finalization
    would lose those messages if the process died in between. `commit` (the run succeeded)
    acknowledges every held message; `close` (it failed) stops extending their leases, so
    Pub/Sub delivers them again once the deadline lapses."""

    def __init__(self, client: Any, subscription: str, deadline_s: int, clock: Clock = time.time) -> None:
        self._subscription = subscription
        # No lease cap: these messages are done, they only wait for the run to end.
        self._keeper = LeaseKeeper(client, subscription, deadline_s, float("inf"), clock)

    def add(self, ack_ids: Sequence[str]) -> None:
        self._keeper.add(ack_ids)

    def held(self) -> int:
        return len(self._keeper.held())

    def commit(self) -> None:
        ids = self._keeper.held()
        self._keeper.close()
        try:
            self._keeper.ack(ids)
        except gexc.GoogleAPIError as err:  # call errors and exhausted retries alike
            LOG.warning(
                "Pub/Sub: could not acknowledge %d messages of %s (%s); Pub/Sub will deliver them again and "
                "the next run counts them again unless it runs with --dedupe_by.",
                len(ids), self._subscription, err,
            )  # fmt: skip
            return
        LOG.info("Pub/Sub: acknowledged %d messages of %s after the run succeeded", len(ids), self._subscription)

    def close(self) -> None:
        self._keeper.close()
