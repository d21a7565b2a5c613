"""The Pub/Sub reader's watermark: event times (publish time or an attribute) that never go
backwards, plus an idle advance so windows still close on a quiet subscription.

Pure logic with an injectable clock, so it is unit-tested without a runner or an emulator.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from apache_beam.io.iobase import WatermarkEstimator
from apache_beam.transforms.core import WatermarkEstimatorProvider
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

Clock = Callable[[], float]  # epoch seconds, like time.time

# (watermark_ms or None, last_activity_ms): all a checkpoint has to carry.
EstimatorState = tuple


class PubSubWatermarkEstimator(WatermarkEstimator):
    """Watermark = the oldest event time of the latest non-empty pull, never moved backwards.

    Pub/Sub does not order delivery, but a pull returns (roughly) the oldest outstanding
    messages, so the oldest time in the latest pull is a good lower bound for what is still
    to come. When nothing has arrived for `idle_delay_s`, the watermark advances to
    `now - idle_delay_s`: everything published before that would have been delivered by now.
    """

    def __init__(self, state: EstimatorState | None, idle_delay_s: float, clock: Clock = time.time) -> None:
        watermark_ms, last_activity_ms = state if state else (None, None)
        self._clock = clock
        self._idle_ms = int(idle_delay_s * 1000)
        self._watermark_ms: int | None = watermark_ms
        # A reader that has never seen a message counts as active from its first look at the clock.
        self._last_activity_ms: int | None = last_activity_ms

    def bind_clock(self, clock: Clock) -> None:
        """Use the reader's clock (the runner builds estimators with the provider's default)."""
        self._clock = clock

    def _now_ms(self) -> int:
        now = int(self._clock() * 1000)
        if self._last_activity_ms is None:
            self._last_activity_ms = now
        return now

    def _advance(self, candidate_ms: int) -> None:
        if self._watermark_ms is None or candidate_ms > self._watermark_ms:
            self._watermark_ms = candidate_ms

    def observe_timestamp(self, timestamp: Timestamp) -> None:
        # Output timestamps are not the signal: record_pull() sees every event time first.
        pass

    def record_pull(self, event_times_ms: Iterable[int]) -> None:
        """Account for one pull's event times (publish times or attribute times)."""
        times = list(event_times_ms)
        if not times:
            return
        self._advance(min(times))
        self._last_activity_ms = int(self._clock() * 1000)

    def idle_seconds(self) -> float:
        """Seconds since the last message arrived (or since the reader started)."""
        now = self._now_ms()
        return max(0, now - self._last_activity_ms) / 1000.0

    def watermark_ms(self) -> int | None:
        now = self._now_ms()
        if now - self._last_activity_ms >= self._idle_ms:
            self._advance(now - self._idle_ms)
        return self._watermark_ms

    def current_watermark(self) -> Timestamp:
        millis = self.watermark_ms()
        return MIN_TIMESTAMP if millis is None else Timestamp(micros=millis * 1000)

    def get_estimator_state(self) -> EstimatorState:
        return (self._watermark_ms, self._last_activity_ms)


class PubSubWatermarkProvider(WatermarkEstimatorProvider):
    """Creates PubSubWatermarkEstimators; state survives checkpoints."""

    def __init__(self, idle_delay_s: float, clock: Clock = time.time) -> None:
        self._idle_delay_s = idle_delay_s
        self._clock = clock

    def initial_estimator_state(self, element: object, restriction: object) -> EstimatorState:
        return (None, None)

    def create_watermark_estimator(self, estimator_state: EstimatorState) -> PubSubWatermarkEstimator:
        return PubSubWatermarkEstimator(estimator_state, self._idle_delay_s, self._clock)
