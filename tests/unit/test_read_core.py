"""The shared stream-read core: bounds, the record budget, the claim loop, the idle watermark and
unbounded readers, without a server (clocks are injected)."""

from __future__ import annotations

import threading
import uuid

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors.read_core import (
    IdleWatermarkEstimator,
    RecordBudget,
    StreamReadFn,
    StreamReadSettings,
    WatermarkState,
    claim_within_budget,
    listen_to_claims,
    unbounded,
)


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_read_is_bounded_by_any_of_its_bounds() -> None:
    assert not StreamReadSettings().bounded
    assert StreamReadSettings(max_records=1).bounded
    assert StreamReadSettings(max_read_time_s=0.5).bounded
    assert StreamReadSettings(read_to_latest=True).bounded


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        (StreamReadSettings(max_records=0), "max_records"),
        (StreamReadSettings(max_read_time_s=0), "max_read_time"),
        (StreamReadSettings(max_read_time_s=float("nan")), "max_read_time"),
        (StreamReadSettings(max_call_s=0), "checkpoint interval"),
        (StreamReadSettings(idle_after_s=-1), "idle watermark"),
    ],
)
def test_bad_bounds_are_named(settings: StreamReadSettings, word: str) -> None:
    problems = settings.bound_problems()
    assert len(problems) == 1 and word in problems[0]


def test_settings_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        StreamReadSettings(5)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        StreamReadSettings().max_records = 3  # type: ignore[misc]


def test_the_budget_is_shared_by_every_reader_of_one_read() -> None:
    read_id = uuid.uuid4().hex
    a, b = RecordBudget(read_id, 10), RecordBudget(read_id, 10)
    assert a.take(7) == 7
    assert b.take(7) == 3
    assert a.spent and b.spent
    b.give_back(2)
    assert not a.spent and a.take(5) == 2
    assert RecordBudget(uuid.uuid4().hex, 10).take(4) == 4  # another read has its own


def test_the_budget_holds_under_concurrent_takes() -> None:
    budget = RecordBudget(uuid.uuid4().hex, 1_000)
    granted: list[int] = []

    def take() -> None:
        for _ in range(200):
            granted.append(budget.take(3))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 1_000


def test_no_limit_grants_everything() -> None:
    budget = RecordBudget(uuid.uuid4().hex, None)
    assert budget.take(10**9) == 10**9 and not budget.spent and not budget.over


def test_the_deadline_counts_from_the_first_look() -> None:
    clock = Clock(50.0)
    read_id = uuid.uuid4().hex
    budget = RecordBudget(read_id, None, seconds=5, clock=clock)
    assert not budget.past_deadline()
    clock.now = 54.9
    assert not RecordBudget(read_id, None, seconds=5, clock=clock).over  # the same read, another reader
    clock.now = 55.0
    assert budget.past_deadline() and budget.over


def test_claims_stop_at_the_budget_and_report_it_spent() -> None:
    budget = RecordBudget(uuid.uuid4().hex, 3)
    tracker = OffsetRestrictionTracker(OffsetRange(0, 100))
    got = claim_within_budget(list(range(5)), budget, tracker.try_claim)
    assert got.records == [0, 1, 2] and got.budget_spent
    assert budget.spent


def test_a_refused_claim_gives_the_rest_back() -> None:
    budget = RecordBudget(uuid.uuid4().hex, 10)
    tracker = OffsetRestrictionTracker(OffsetRange(0, 2))  # a checkpoint cut the range at 2
    got = claim_within_budget(list(range(5)), budget, tracker.try_claim)
    assert got.records == [0, 1] and not got.budget_spent
    assert budget.take(100) == 8  # the three unclaimed went back


def test_claim_listeners_hear_every_claim_and_can_be_removed() -> None:
    heard: list[int] = []
    remove = listen_to_claims(heard.append)
    budget = RecordBudget(uuid.uuid4().hex, None)
    claim_within_budget([1, 2, 3], budget, lambda _: True)
    claim_within_budget([4], budget, lambda _: False)  # nothing claimed: nothing heard
    remove()
    claim_within_budget([5], budget, lambda _: True)
    assert heard == [3]


def test_the_watermark_follows_observations_and_never_goes_back() -> None:
    estimator = IdleWatermarkEstimator(None, idle_after_s=5, idle_lag_s=2, clock=Clock())
    assert estimator.current_watermark() == MIN_TIMESTAMP
    estimator.observe(2_000)
    estimator.observe(1_500)
    estimator.observe(None)
    assert estimator.watermark_ms() == 2_000
    assert estimator.current_watermark() == Timestamp(micros=2_000_000)


def test_a_quiet_reader_advances_to_now_minus_the_lag_after_the_idle_delay() -> None:
    clock = Clock(1_000.0)
    estimator = IdleWatermarkEstimator(None, idle_after_s=5, idle_lag_s=2, clock=clock)
    estimator.observe(10_000)
    assert not estimator.idle()  # quiet from now on
    clock.now = 1_004.9
    assert not estimator.idle() and estimator.watermark_ms() == 10_000
    assert estimator.quiet_seconds() == pytest.approx(4.9)
    clock.now = 1_005.0
    assert estimator.idle()
    assert estimator.watermark_ms() == 1_003_000
    estimator.observe(5_000)  # records flow again: quiet resets, the watermark stays
    assert estimator.quiet_seconds() == 0 and estimator.watermark_ms() == 1_003_000


def test_the_state_survives_a_checkpoint() -> None:
    clock = Clock(1_000.0)
    estimator = IdleWatermarkEstimator(None, idle_after_s=5, idle_lag_s=5, clock=clock)
    estimator.observe(7)
    estimator.idle()
    state = estimator.get_estimator_state()
    assert state == WatermarkState(7, 1_000.0)
    clock.now = 1_006.0
    resumed = IdleWatermarkEstimator(tuple(state), idle_after_s=5, idle_lag_s=5, clock=clock)
    assert resumed.idle() and resumed.watermark_ms() == 1_001_000


class _CountingReader(StreamReadFn):
    """Reads offsets 0..9 of each element within the read's budget."""

    def initial_restriction(self, element: str) -> OffsetRange:
        return OffsetRange(0, 10)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element: str, restriction: OffsetRange) -> float:
        return restriction.size()

    def process(
        self,
        element: str,
        tracker: OffsetRestrictionTracker = beam.DoFn.RestrictionParam(),
        watermark: IdleWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ):  # noqa: ANN201 - a generator of (element, offset)
        start = tracker.current_restriction().start
        got = claim_within_budget(list(range(start, 10)), self._budget, tracker.try_claim)
        watermark.observe(1_000)
        for offset in got.records:
            yield element, offset
        if got.budget_spent:
            tracker.try_claim(10)


UnboundedCountingReader = unbounded(_CountingReader)


def test_unbounded_keeps_the_reader_and_marks_it_unbounded() -> None:
    assert UnboundedCountingReader.__name__ == "UnboundedCountingReader"
    assert issubclass(UnboundedCountingReader, _CountingReader)
    assert UnboundedCountingReader.process.unbounded_per_element is True
    assert not getattr(_CountingReader.process, "unbounded_per_element", False)


def test_readers_on_the_core_run_within_the_shared_budget() -> None:
    settings = StreamReadSettings(max_records=13, read_id=uuid.uuid4().hex)
    with beam.Pipeline() as pipeline:
        out = pipeline | beam.Create(["a", "b"]) | beam.ParDo(_CountingReader(settings))
        assert out.is_bounded
        assert_that(out | beam.combiners.Count.Globally(), equal_to([13]))


SEEN: list[tuple[str, int]] = []


def _see(element: tuple[str, int]) -> None:
    SEEN.append(element)  # a module function: pickled by reference, so it appends to this list


def test_an_unbounded_reader_gives_an_unbounded_collection() -> None:
    SEEN.clear()
    with beam.Pipeline() as pipeline:
        out = pipeline | beam.Create(["a"]) | beam.ParDo(UnboundedCountingReader(StreamReadSettings()))
        assert not out.is_bounded
        _ = out | beam.Map(_see)
    assert sorted(SEEN) == [("a", offset) for offset in range(10)]
