"""The local runner keeps its per-bundle metrics bounded (runners.direct.bound_bundle_metrics).

Beam 2.77's FnApiRunner folds each bundle's monitoring infos into the previous ones through
`consolidate_monitoring_infos(itertools.chain(new, previous))`; unpatched, that is a lazy chain
of generators holding every bundle until the run ends."""

from __future__ import annotations

import gc
import inspect
import itertools
import logging
import re
import weakref
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics, monitoring_infos
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.metrics.monitoring_infos import int64_user_counter
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.core import RestrictionProvider

from runners import direct
from runners.direct import bound_bundle_metrics

BUNDLES = 60


@pytest.fixture(autouse=True)
def _beams_own_consolidation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from Beam's unpatched function and leaves the module as it found it."""
    monkeypatch.setattr(fn_runner, "consolidate_monitoring_infos", monitoring_infos.consolidate)
    direct._skip_once.cache_clear()


class _Bundle(list):
    """One bundle's monitoring infos (a list that can be referenced weakly)."""


def _fold(bundles: int) -> tuple[Any, weakref.ref]:
    """Folds `bundles` bundles of two counters the way the runner does; returns the fold and a
    weak reference to the first bundle."""
    folded: Any = []
    first = None
    for _ in range(bundles):
        bundle = _Bundle(
            [int64_user_counter("ns", "records", 3, ptransform="Read"),
             int64_user_counter("ns", "bytes", 100, ptransform="Read")]
        )  # fmt: skip
        first = first or weakref.ref(bundle)
        folded = fn_runner.consolidate_monitoring_infos(itertools.chain(bundle, folded))
    del bundle
    gc.collect()
    return folded, first


def _totals(folded: Any) -> list[bytes]:
    return sorted(info.payload for info in folded)


def test_unpatched_fold_is_a_lazy_chain_that_keeps_every_bundle_and_the_bound_makes_it_a_list():
    unbounded, first = _fold(200)  # deeper chains overflow the stack when consumed
    assert inspect.isgenerator(unbounded)
    assert first() is not None, "the chain still references the first bundle"
    expected = _totals(unbounded)

    assert bound_bundle_metrics()
    assert bound_bundle_metrics()  # idempotent: no wrapper around a wrapper
    bounded, first = _fold(200)
    assert isinstance(bounded, list)
    assert len(bounded) == 2
    assert first() is None, "the first bundle is released once folded"
    assert _totals(bounded) == expected


def test_the_bound_keeps_one_entry_per_metric_over_many_bundles():
    assert bound_bundle_metrics()
    folded, _ = _fold(5_000)
    expected = sorted(int64_user_counter("ns", n, v, ptransform="Read").payload
                      for n, v in (("records", 15_000), ("bytes", 500_000)))  # fmt: skip
    assert _totals(folded) == expected


@pytest.mark.parametrize(
    "version,consolidate,reason",
    [
        ("2.78.0", monitoring_infos.consolidate, r"Beam 2\.78\.0 is not a release whose metrics folding was checked"),
        ("2.77.0", lambda infos: list(infos), r"consolidate_monitoring_infos is no longer a generator function"),
    ],
    ids=["other-release", "not-a-generator"],
)
def test_the_bound_is_skipped_with_one_warning_where_beam_differs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, version: str, consolidate: Any, reason: str
) -> None:
    monkeypatch.setattr(direct.apache_beam, "__version__", version)
    monkeypatch.setattr(fn_runner, "consolidate_monitoring_infos", consolidate)
    with caplog.at_level(logging.WARNING, logger="runners.direct"):
        assert not bound_bundle_metrics()
        assert not bound_bundle_metrics()
    assert fn_runner.consolidate_monitoring_infos is consolidate, "Beam's function is left alone"
    warnings = [r.getMessage() for r in caplog.records if r.name == "runners.direct"]
    assert len(warnings) == 1
    assert re.search(reason, warnings[0])


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


def test_a_many_bundle_run_folds_into_lists_and_reports_the_same_metrics(monkeypatch: pytest.MonkeyPatch):
    """A run of one bundle per element on Beam's FnApiRunner: with the bound, every fold the
    runner keeps is a list, and the run still reports every bundle's increments and elements."""
    assert bound_bundle_metrics()
    bounded = fn_runner.consolidate_monitoring_infos
    kept: list[type] = []

    def recorded(infos: Any) -> Any:  # noqa: ANN401
        folded = bounded(infos)
        kept.append(type(folded))
        return folded

    monkeypatch.setattr(fn_runner, "consolidate_monitoring_infos", recorded)
    with beam.Pipeline(runner=fn_runner.FnApiRunner()) as pipeline:
        outputs = pipeline | beam.Create([BUNDLES]) | beam.ParDo(_OneClaimPerBundle())
        counted = outputs | beam.combiners.Count.Globally()
        assert_that(counted, equal_to([BUNDLES]))
    assert len(kept) >= BUNDLES
    assert set(kept) == {list}
    counters = pipeline.result.metrics().query(MetricsFilter().with_name("claimed"))["counters"]
    assert sum(c.committed for c in counters) == BUNDLES
