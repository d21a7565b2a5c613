"""The resumable paced synthetic read: it checkpoints between batches and still gives every event
exactly once, in the same batches as the read in one call."""

from __future__ import annotations

import apache_beam as beam
import orjson
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.sdf_utils import RestrictionTrackerView
from apache_beam.testing.util import assert_that, equal_to

from io_connectors import synthetic
from io_connectors.synthetic import ReadSynthetic, SyntheticConfig

EVENTS = 1_000


def _ids(batch) -> list[str]:  # noqa: ANN001 - a RawBatch
    ids = []
    for record in batch.records:
        try:
            ids.append(orjson.loads(record)["event_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ids.append(f"malformed@{batch.first_offset}")  # counted, not parsed
    return ids


def _read(resumable: bool) -> None:
    config = SyntheticConfig(events=EVENTS, rate=4_000, malformed=0.0)
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        batches = pipeline | ReadSynthetic(config, resumable=resumable)
        spans = batches | "Spans" >> beam.Map(lambda batch: (batch.first_offset, len(batch.records)))
        # Batches of rate/20 = 200 events, each offset once.
        assert_that(spans, equal_to([(first, 200) for first in range(0, EVENTS, 200)]), label="Batches")
        ids = batches | beam.FlatMap(_ids)
        assert_that(ids, equal_to([f"e-42-{i}" for i in range(EVENTS)]), label="EveryEventOnce")


def test_a_resumable_paced_read_gives_every_event_once_across_checkpoints(monkeypatch):
    # A call emits the batches due within 0.05 s (2 of 5) and defers the rest: three calls.
    monkeypatch.setattr(synthetic, "PACED_CALL_S", 0.05)
    deferred = []
    real = RestrictionTrackerView.defer_remainder  # what a splittable DoFn's tracker parameter is

    def counting(self, deferred_time=None):  # noqa: ANN001, ANN202
        deferred.append(self.current_restriction())
        return real(self, deferred_time)

    monkeypatch.setattr(RestrictionTrackerView, "defer_remainder", counting)
    _read(resumable=True)
    assert len(deferred) == 2


def test_the_one_call_read_gives_the_same_batches():
    _read(resumable=False)


def test_an_unpaced_read_is_never_resumable():
    assert not ReadSynthetic(SyntheticConfig(events=10), resumable=True)._resumable
