"""The Pub/Sub reader's watermark: publish (or attribute) time, never backwards, idle advance.

The estimator is the shared IdleWatermarkEstimator as the Pub/Sub reader makes it (its own
provider, with --pubsub_idle_watermark); the reader observes each pull's oldest event time and
reports each empty pull as idle."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors.pubsub import ReadSettings, _PullFn, event_time_ms
from io_connectors.read_core import IdleWatermarkEstimator

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in millis
SUB = "projects/p1/subscriptions/sub1"


class Clock:
    def __init__(self, seconds: float) -> None:
        self.now = seconds

    def __call__(self) -> float:
        return self.now


def _reader(idle_watermark_s: float, clock: Clock) -> _PullFn:
    return _PullFn(ReadSettings(subscription=SUB, idle_after_s=idle_watermark_s), clock=clock)


def _estimator(reader: _PullFn, state: object = None) -> IdleWatermarkEstimator:
    """What the runner does with the reader as its own watermark estimator provider."""
    if state is None:
        state = reader.initial_estimator_state(SUB, reader.initial_restriction(SUB))
    return reader.create_watermark_estimator(state)


def _message(publish_ms: int, **attributes: str) -> SimpleNamespace:
    return SimpleNamespace(
        publish_time=datetime.fromtimestamp(publish_ms / 1000, tz=UTC), attributes=attributes, message_id="m"
    )


def test_watermark_follows_publish_time_and_never_goes_backwards() -> None:
    clock = Clock(T0 / 1000 + 1)
    est = _estimator(_reader(30, clock))
    assert est.current_watermark() == MIN_TIMESTAMP  # nothing seen yet

    pull = [_message(T0 + 500), _message(T0 + 200), _message(T0 + 900)]
    est.observe(min(event_time_ms(m, None) for m in pull))
    assert est.watermark_ms() == T0 + 200  # the oldest publish time of the pull
    assert est.current_watermark() == Timestamp(micros=(T0 + 200) * 1000)

    clock.now += 1
    est.observe(min([T0 + 5_000, T0 + 4_000]))
    assert est.watermark_ms() == T0 + 4_000

    clock.now += 1
    est.observe(T0 + 100)  # an old redelivery: the watermark stays
    assert est.watermark_ms() == T0 + 4_000
    assert not est.idle()  # an empty pull changes nothing (before the idle delay)
    assert est.watermark_ms() == T0 + 4_000


def test_idle_advance_uses_the_clock_and_stays_monotonic() -> None:
    clock = Clock(T0 / 1000)
    est = _estimator(_reader(10, clock))
    est.observe(T0 - 60_000)
    est.idle()  # the next pull found nothing
    assert est.watermark_ms() == T0 - 60_000
    clock.now += 9.999
    assert not est.idle()
    assert est.watermark_ms() == T0 - 60_000  # not idle yet
    assert est.quiet_seconds() == pytest.approx(9.999, abs=1e-6)  # float epoch seconds
    clock.now += 0.001
    assert est.idle()
    assert est.watermark_ms() == T0  # idle 10 s: now - 10 s
    clock.now += 5
    est.idle()
    assert est.watermark_ms() == T0 + 5_000
    # New data older than the idle watermark must not pull it back.
    est.observe(T0 - 1_000)
    assert est.watermark_ms() == T0 + 5_000
    assert est.quiet_seconds() == 0


def test_never_seen_a_message_goes_idle_from_its_first_look() -> None:
    clock = Clock(T0 / 1000)
    est = _estimator(_reader(5, clock))
    assert est.watermark_ms() is None
    est.idle()  # what the reader does on its first look when it never saw a message
    clock.now += 5
    est.idle()  # an empty pull
    assert est.watermark_ms() == T0
    assert est.quiet_seconds() == 5


def test_state_survives_a_checkpoint() -> None:
    clock = Clock(T0 / 1000)
    reader = _reader(10, clock)
    est = _estimator(reader)
    est.observe(T0 - 3_000)
    est.idle()  # caught up
    state = est.get_estimator_state()
    clock.now += 4
    resumed = _estimator(reader, state)
    assert resumed.watermark_ms() == T0 - 3_000
    assert resumed.quiet_seconds() == 4  # idleness counts across the checkpoint
    resumed.observe(T0 - 9_000)
    assert resumed.watermark_ms() == T0 - 3_000


def test_event_time_attribute_drives_the_watermark_when_set() -> None:
    msg = _message(T0, ts="1767225000000")
    assert event_time_ms(msg, "ts") == 1_767_225_000_000
    assert event_time_ms(_message(T0, ts="2026-01-01T00:00:01Z"), "ts") == T0 + 1_000
    # Missing or unparseable attribute: publish time (the record itself still goes to decode).
    assert event_time_ms(_message(T0, other="x"), "ts") == T0
    assert event_time_ms(_message(T0, ts="soon"), "ts") == T0
    assert event_time_ms(msg, None) == T0
