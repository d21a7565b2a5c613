"""Kinesis shard discovery: lists the stream's shards and emits each shard once, parents before
children, as the element of one shard reader. An unbounded read lists again every discovery
interval to follow resharding; a bounded read lists once.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator, NamedTuple, Sequence

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.iobase import RestrictionTracker
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration

from io_connectors.kinesis_client import is_unavailable, list_shards, make_client
from io_connectors.kinesis_core import SHARDS, STOP, KinesisReadConfig, KinesisShard, StartPosition
from io_connectors.read_core import stop_requested, unbounded

LOG = logging.getLogger(__name__)


class DiscoveryState(NamedTuple):
    """Restriction of the discovery SDF: what has been emitted (or deliberately skipped)."""

    emitted: frozenset = frozenset()
    skipped: frozenset = frozenset()
    polls: int = 0
    finished: bool = False


class _DiscoveryTracker(RestrictionTracker):
    """Claims successive DiscoveryStates; splits only at a checkpoint, whose residual continues
    from the last claimed state (so no shard is emitted twice or forgotten)."""

    def __init__(self, restriction: DiscoveryState) -> None:
        self._restriction = restriction
        self._claimed = restriction
        self._stopped = restriction.finished

    def current_restriction(self) -> DiscoveryState:
        return self._restriction

    def try_claim(self, position: Any) -> bool:
        if self._stopped:
            return False
        if position == STOP:
            self._stopped = True
            self._restriction = self._claimed._replace(finished=True)
            return True
        if not (position.emitted >= self._claimed.emitted and position.polls > self._claimed.polls):
            raise ValueError(
                f"Discovery states claimed should grow: {position} after {self._claimed}."
            )
        self._claimed = position
        return True

    def try_split(self, fraction_of_remainder: float) -> tuple[DiscoveryState, DiscoveryState] | None:
        if fraction_of_remainder != 0 or self._stopped:
            return None
        self._stopped = True
        self._restriction = self._claimed._replace(finished=True)
        return self._restriction, self._claimed._replace(finished=False)

    def check_done(self) -> None:
        if not self._stopped:
            raise ValueError(f"Shard discovery {self._claimed} must stop or checkpoint before returning.")

    def is_bounded(self) -> bool:
        return self._stopped


def plan_shards(
    shards: Sequence[dict[str, Any]],
    state: DiscoveryState,
    config: KinesisReadConfig,
    now_ms: int,
) -> tuple[list[KinesisShard], DiscoveryState]:
    """Which listed shards to start reading now, and the discovery state after emitting them.

    First listing: LATEST reads open shards from now (pinned as AT_TIMESTAMP so a checkpoint
    before the first record loses nothing) and skips closed ones; TRIM_HORIZON and AT_TIMESTAMP
    read every listed shard. Later listings add shards created by resharding, from their start.
    A shard is emitted only once its listed parents are emitted or skipped, and names the
    emitted ones: its reader waits until they are finished.
    """
    known = set(state.emitted) | set(state.skipped)
    by_id = {s["ShardId"]: s for s in shards}
    first = state.polls == 0
    new: list[KinesisShard] = []
    skipped = set(state.skipped)
    progress = True
    while progress:
        progress = False
        for shard_id, shard in by_id.items():
            if shard_id in known:
                continue
            listed_parents = [
                p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p and p in by_id
            ]
            if any(p not in known for p in listed_parents):
                continue
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            if first and config.start_position == "LATEST":
                if closed:
                    skipped.add(shard_id)
                    known.add(shard_id)
                    progress = True
                    continue
                start = StartPosition("AT_TIMESTAMP", timestamp_ms=now_ms)
            elif first and config.start_position == "AT_TIMESTAMP":
                start = StartPosition("AT_TIMESTAMP", timestamp_ms=config.start_timestamp_ms)
            else:
                start = StartPosition("TRIM_HORIZON")
            parents = tuple(p for p in listed_parents if p not in skipped)
            new.append(KinesisShard(config.stream, shard_id, parents, start))
            known.add(shard_id)
            progress = True
    emitted = frozenset(state.emitted | {s.shard_id for s in new})
    return new, DiscoveryState(emitted, frozenset(skipped), state.polls + 1, False)


class _DiscoverShards(beam.DoFn, RestrictionProvider):
    """Polling splittable DoFn over the stream's shard list: re-lists every discovery interval
    while an unbounded read follows resharding; otherwise lists once."""

    def __init__(self, config: KinesisReadConfig) -> None:
        self._config = config

    # RestrictionProvider (runs on a separate copy, before setup(): config only, no client).
    def initial_restriction(self, element: str) -> DiscoveryState:
        return DiscoveryState()

    def create_tracker(self, restriction: DiscoveryState) -> _DiscoveryTracker:
        return _DiscoveryTracker(restriction)

    def restriction_size(self, element: str, restriction: DiscoveryState) -> float:
        return 0.0 if restriction.finished else 1.0

    def restriction_coder(self) -> coders.Coder:
        return coders.PickleCoder()

    def truncate(self, element: str, restriction: DiscoveryState) -> None:
        return None  # on drain, stop discovering

    def setup(self) -> None:
        self._client = make_client(self._config.region, self._config.endpoint_url)

    def process(
        self, stream: str, tracker: RestrictionTracker = beam.DoFn.RestrictionParam()
    ) -> Iterator[KinesisShard]:
        config = self._config
        state = tracker.current_restriction()
        if stop_requested():  # the run is stopping (read_core.stop_reading): no more shards to follow
            tracker.try_claim(STOP)
            return
        try:
            shards = list_shards(self._client, stream)  # slow I/O before the claim
        except Exception as err:  # noqa: BLE001 - botocore errors; classified here
            if not (is_unavailable(err) and state.polls > 0):
                raise
            LOG.warning("kinesis: listing shards of %s failed: endpoint unavailable (%s); retrying", stream,
                        type(err).__name__)
            tracker.defer_remainder(Duration(seconds=config.discovery_interval_s))
            return
        new, next_state = plan_shards(shards, state, config, int(time.time() * 1000))
        if not tracker.try_claim(next_state):
            return
        SHARDS.add_known(config.read_id, next_state.emitted | next_state.skipped)
        for skipped in next_state.skipped:
            SHARDS.mark_finished(config.read_id, skipped)
        for shard in new:
            LOG.info("kinesis: reading shard %s/%s from %s (after %s)", stream, shard.shard_id, shard.start.kind,
                     ", ".join(shard.parents) or "no parent")
            yield shard
        if config.bounded:
            # A bounded read lists once. On a batch runner the readers start only after this step
            # ends, so shards created by resharding meanwhile go to spare readers, which adopt them.
            for _ in range(config.spare_readers):
                yield KinesisShard(stream, "", (), StartPosition("TRIM_HORIZON"))
        if config.bounded or not config.follow_resharding:
            tracker.try_claim(STOP)
            return
        tracker.defer_remainder(Duration(seconds=config.discovery_interval_s))


UnboundedDiscoverShards = unbounded(_DiscoverShards)


def discover_shards(config: KinesisReadConfig) -> beam.DoFn:
    """The discovery step of `config`'s read: unbounded only while it follows resharding."""
    endless = not config.bounded and config.follow_resharding
    return UnboundedDiscoverShards(config) if endless else _DiscoverShards(config)
