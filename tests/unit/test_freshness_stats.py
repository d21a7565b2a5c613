"""The freshness benchmark's latency arithmetic, on hand-made sends and panes (no clock)."""

import pytest

from benchmarks.freshness_stats import (
    event_latencies,
    first_inclusion_ms,
    pane_latencies,
    percentile,
    summarize,
    sustained_rate,
)


def test_percentile_interpolates_between_ranks():
    values = [40, 10, 30, 20]  # order does not matter
    assert percentile(values, 0) == 10
    assert percentile(values, 100) == 40
    assert percentile(values, 50) == 25
    assert percentile(values, 99) == pytest.approx(39.7)


def test_percentile_of_one_value_and_bad_input():
    assert percentile([7], 95) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1], 101)


def test_first_inclusion_takes_the_first_pane_whose_count_covers_the_event():
    sent = [0, 100, 200, 300]
    panes = [(1500, 4), (1000, 2)]  # unsorted on purpose
    assert first_inclusion_ms(sent, panes) == [1000, 1000, 1500, 1500]


def test_a_later_pane_with_a_smaller_count_adds_nothing_and_uncovered_events_stay_none():
    sent = [0, 100, 200]
    assert first_inclusion_ms(sent, [(1000, 2), (1200, 1)]) == [1000, 1000, None]
    assert first_inclusion_ms(sent, []) == [None, None, None]


def test_counts_beyond_the_events_sent_are_capped():
    # Events of the group sent outside the measured phase (say probes) do not shift indices.
    assert first_inclusion_ms([0], [(500, 3)]) == [500]


def test_event_latencies_per_group_and_missing_events():
    sent = {"a": [0, 100], "b": [50, 60, 70]}
    panes = {"a": [(1000, 1), (2000, 2)], "b": [(900, 2)]}
    latencies, missing = event_latencies(sent, panes)
    assert sorted(latencies) == [840, 850, 1000, 1900]
    assert missing == 1


def test_pane_latency_is_measured_from_the_newest_included_event():
    sent = {"a": [0, 100, 200]}
    # The repeated pane (same count) adds no events and is not counted again.
    panes = {"a": [(1000, 2), (1100, 2), (1300, 3)]}
    assert pane_latencies(sent, panes) == [900, 1100]


def test_summarize_reports_milliseconds_and_handles_no_data():
    summary = summarize([100.0, 200.0, 300.0])
    assert summary["n"] == 3
    assert summary["p50_ms"] == 200.0
    assert summary["max_ms"] == 300.0
    assert summary["mean_ms"] == 200.0
    assert summarize([])["p99_ms"] is None


def test_sustained_rate_counts_delivery_up_to_the_last_first_inclusion():
    # 11 events sent over 1 s; all included, the last one 1 s after the first send.
    sent = {"a": [i * 100.0 for i in range(11)]}
    panes = {"a": [(500, 6), (1000, 11)]}
    rates = sustained_rate(sent, panes)
    assert rates["events"] == 11
    assert rates["delivered"] == 11
    assert rates["offered_per_s"] == 11
    assert rates["sustained_per_s"] == 11
    late = sustained_rate(sent, {"a": [(2000, 11)]})
    assert late["sustained_per_s"] == 6  # 11 events delivered over 2 s
