"""The local runner keeps its per-bundle metrics bounded (runners.direct.bound_bundle_metrics)."""

from __future__ import annotations

import itertools

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.metrics.monitoring_infos import int64_user_counter
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.core import RestrictionProvider

from runners.direct import bound_bundle_metrics

BUNDLES = 60


def test_folding_every_bundle_keeps_one_entry_per_metric():
    """The runner folds each bundle's metrics into the previous ones; once bounded, the fold is a
    list with one entry per metric (not a generator chain holding every bundle) and the sums are
    unchanged."""
    bound_bundle_metrics()
    bound_bundle_metrics()  # idempotent: no wrapper around a wrapper
    folded: list = []
    for _ in range(5_000):
        bundle = [int64_user_counter("ns", "records", 3, ptransform="Read"),
                  int64_user_counter("ns", "bytes", 100, ptransform="Read")]
        folded = fn_runner.consolidate_monitoring_infos(itertools.chain(bundle, folded))
    assert isinstance(folded, list)
    assert len(folded) == 2
    totals = sorted(info.payload for info in folded)
    expected = sorted(int64_user_counter("ns", n, v, ptransform="Read").payload
                      for n, v in (("records", 15_000), ("bytes", 500_000)))
    assert totals == expected


class _OneClaimPerBundle(beam.DoFn, RestrictionProvider):
    """Claims one offset, then defers the rest: one bundle per offset on the FnApiRunner, as an
    unbounded stream read does."""

    def __init__(self) -> None:
        self._claimed = Metrics.counter("test", "claimed")

    def initial_restriction(self, element: int) -> OffsetRange:
        return OffsetRange(0, element)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element: int, restriction: OffsetRange) -> int:
        return restriction.size()

    def process(self, element: int, tracker=beam.DoFn.RestrictionParam()):  # noqa: ANN001, ANN201
        position = tracker.current_restriction().start
        if tracker.try_claim(position):
            self._claimed.inc()
            yield position
            tracker.defer_remainder()


def test_a_many_bundle_run_reports_the_same_metrics():
    """A run of one bundle per element on Beam's FnApiRunner, with the metrics bounded, still
    reports every bundle's counter increments and every element."""
    bound_bundle_metrics()
    with beam.Pipeline(runner=fn_runner.FnApiRunner()) as pipeline:
        outputs = pipeline | beam.Create([BUNDLES]) | beam.ParDo(_OneClaimPerBundle())
        counted = outputs | beam.combiners.Count.Globally()
        assert_that(counted, equal_to([BUNDLES]))
    result = pipeline.result
    counters = result.metrics().query(MetricsFilter().with_name("claimed"))["counters"]
    assert sum(c.committed for c in counters) == BUNDLES
