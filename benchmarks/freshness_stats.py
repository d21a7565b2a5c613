"""Latency arithmetic of the freshness benchmark: pure functions, no clock, no I/O.

Definitions (see docs/benchmarks-freshness.md):

* A *group* is one aggregate row: (window_start, region, key). Panes are accumulating, so the
  `count` of a group in a pane is the number of its events that pane includes.
* Event latency: for the k-th event of a group (in send order), the write time of the first
  pane of that group whose count is >= k, minus the event's send time. This assumes a pane
  holds the *earliest* events of its group, which holds when one shard carries them in send
  order (Kinesis keeps order within a shard and the reader emits pages in order).
* Pane latency: for each pane that adds events to its group, its write time minus the send
  time of the newest event it includes (the count-th): the staleness of that pane at birth.
"""

from __future__ import annotations

import math
from typing import Hashable, Iterable, Mapping, Sequence

Group = Hashable
Pane = tuple[float, int]  # (written_ms, cumulative count of the group in that pane)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks, as numpy's
    default. Raises ValueError on an empty sequence or q outside 0..100."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def first_inclusion_ms(sent_ms: Sequence[float], panes: Iterable[Pane]) -> list[float | None]:
    """For each event of one group (sent_ms in send order), when the first pane including it was
    written; None for events no pane includes. Panes may come in any order."""
    result: list[float | None] = [None] * len(sent_ms)
    covered = 0
    for written_ms, count in sorted(panes):
        # A pane written later with a smaller count (a retried or reordered write) adds nothing.
        upto = min(count, len(sent_ms))
        for index in range(covered, upto):
            result[index] = written_ms
        covered = max(covered, upto)
    return result


def event_latencies(
    sent: Mapping[Group, Sequence[float]], panes: Mapping[Group, Sequence[Pane]]
) -> tuple[list[float], int]:
    """(latency of every event some pane includes, number of events no pane includes)."""
    latencies: list[float] = []
    missing = 0
    for group, times in sent.items():
        for sent_at, included_at in zip(times, first_inclusion_ms(times, panes.get(group, ())), strict=True):
            if included_at is None:
                missing += 1
            else:
                latencies.append(included_at - sent_at)
    return latencies, missing


def pane_latencies(sent: Mapping[Group, Sequence[float]], panes: Mapping[Group, Sequence[Pane]]) -> list[float]:
    """Write time minus send time of the newest event included, for each pane that adds events."""
    latencies: list[float] = []
    for group, group_panes in panes.items():
        times = sent.get(group)
        if not times:
            continue
        covered = 0
        for written_ms, count in sorted(group_panes):
            upto = min(count, len(times))
            if upto > covered:
                latencies.append(written_ms - times[upto - 1])
                covered = upto
    return latencies


def summarize(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max/mean in milliseconds and the sample size (None values when empty)."""
    if not latencies_ms:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "n": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 50), 1),
        "p95_ms": round(percentile(latencies_ms, 95), 1),
        "p99_ms": round(percentile(latencies_ms, 99), 1),
        "max_ms": round(max(latencies_ms), 1),
        "mean_ms": round(sum(latencies_ms) / len(latencies_ms), 1),
    }


def sustained_rate(
    sent: Mapping[Group, Sequence[float]], panes: Mapping[Group, Sequence[Pane]]
) -> dict[str, float | int | None]:
    """How many events per second went from send to a written pane, end to end.

    `offered_per_s`: events / (last send - first send). `sustained_per_s`: events included in a
    pane / (last first-inclusion - first send), i.e. the rate the whole run was delivered at,
    its tail latency included. Equal rates mean the pipeline kept up.
    """
    all_sent = [t for times in sent.values() for t in times]
    if len(all_sent) < 2:
        return {"events": len(all_sent), "offered_per_s": None, "sustained_per_s": None, "delivered": 0}
    first, last = min(all_sent), max(all_sent)
    included = [
        t for group, times in sent.items() for t in first_inclusion_ms(times, panes.get(group, ())) if t is not None
    ]
    offered = len(all_sent) / ((last - first) / 1000) if last > first else None
    sustained = len(included) / ((max(included) - first) / 1000) if included and max(included) > first else None
    return {
        "events": len(all_sent),
        "delivered": len(included),
        "offered_per_s": round(offered) if offered else None,
        "sustained_per_s": round(sustained) if sustained else None,
    }
