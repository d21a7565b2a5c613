"""The Pub/Sub reader's watermark: publish (or attribute) time, never backwards, idle advance."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors.pubsub import event_time_ms
from io_connectors.pubsub_watermark import PubSubWatermarkEstimator, PubSubWatermarkProvider

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in millis


class Clock:
    def __init__(self, seconds: float) -> None:
        self.now = seconds

    def __call__(self) -> float:
        return self.now


def _message(publish_ms: int, **attributes: str) -> SimpleNamespace:
    return SimpleNamespace(
        publish_time=datetime.fromtimestamp(publish_ms / 1000, tz=UTC), attributes=attributes, message_id="m"
    )


def test_watermark_follows_publish_time_and_never_goes_backwards() -> None:
    clock = Clock(T0 / 1000 + 1)
    est = PubSubWatermarkEstimator(None, idle_delay_s=30, clock=clock)
    assert est.current_watermark() == MIN_TIMESTAMP  # nothing seen yet

    pull = [_message(T0 + 500), _message(T0 + 200), _message(T0 + 900)]
    est.record_pull(event_time_ms(m, None) for m in pull)
    assert est.watermark_ms() == T0 + 200  # the oldest publish time of the pull
    assert est.current_watermark() == Timestamp(micros=(T0 + 200) * 1000)

    clock.now += 1
    est.record_pull([T0 + 5_000, T0 + 4_000])
    assert est.watermark_ms() == T0 + 4_000

    clock.now += 1
    est.record_pull([T0 + 100])  # an old redelivery: the watermark stays
    assert est.watermark_ms() == T0 + 4_000
    est.record_pull([])  # an empty pull changes nothing
    assert est.watermark_ms() == T0 + 4_000


def test_idle_advance_uses_the_clock_and_stays_monotonic() -> None:
    clock = Clock(T0 / 1000)
    est = PubSubWatermarkEstimator(None, idle_delay_s=10, clock=clock)
    est.record_pull([T0 - 60_000])
    assert est.watermark_ms() == T0 - 60_000
    clock.now += 9.999
    assert est.watermark_ms() == T0 - 60_000  # not idle yet
    assert est.idle_seconds() == 9.999
    clock.now += 0.001
    assert est.watermark_ms() == T0  # idle 10 s: now - 10 s
    clock.now += 5
    assert est.watermark_ms() == T0 + 5_000
    # New data older than the idle watermark must not pull it back.
    est.record_pull([T0 - 1_000])
    assert est.watermark_ms() == T0 + 5_000
    assert est.idle_seconds() == 0


def test_never_seen_a_message_goes_idle_from_its_first_clock_reading() -> None:
    clock = Clock(T0 / 1000)
    est = PubSubWatermarkEstimator(None, idle_delay_s=5, clock=clock)
    assert est.watermark_ms() is None
    clock.now += 5
    assert est.watermark_ms() == T0
    assert est.idle_seconds() == 5


def test_state_survives_a_checkpoint() -> None:
    clock = Clock(T0 / 1000)
    provider = PubSubWatermarkProvider(idle_delay_s=10, clock=clock)
    est = provider.create_watermark_estimator(provider.initial_estimator_state(None, None))
    est.record_pull([T0 - 3_000])
    state = est.get_estimator_state()
    clock.now += 4
    resumed = provider.create_watermark_estimator(state)
    assert resumed.watermark_ms() == T0 - 3_000
    assert resumed.idle_seconds() == 4  # idleness counts across the checkpoint
    resumed.record_pull([T0 - 9_000])
    assert resumed.watermark_ms() == T0 - 3_000


def test_event_time_attribute_drives_the_watermark_when_set() -> None:
    msg = _message(T0, ts="1767225000000")
    assert event_time_ms(msg, "ts") == 1_767_225_000_000
    assert event_time_ms(_message(T0, ts="2026-01-01T00:00:01Z"), "ts") == T0 + 1_000
    # Missing or unparseable attribute: publish time (the record itself still goes to decode).
    assert event_time_ms(_message(T0, other="x"), "ts") == T0
    assert event_time_ms(_message(T0, ts="soon"), "ts") == T0
    assert event_time_ms(msg, None) == T0
