"""Groups whose sum left a double's range: reported as dead letters, never silently.

The aggregate itself is still written (its sum and mean as +-Infinity or NaN, see
transforms.formats); the dead letter names the group so that its producer can be found.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import apache_beam as beam

from io_connectors.metrics import DEAD_LETTERS, Counter
from transforms.decode import dead_letter
from transforms.formats import non_finite_text
from transforms.sinks import dead_letter_lines
from transforms.windowing import iso_utc, window_bounds_ms


def overflow_dead_letter(group: dict[str, Any], total: float, vmin: float, vmax: float) -> dict[str, Any]:
    """`group`: window_start, window_end, the dimensions and count of an overflowing aggregate."""
    named = ", ".join(f"{name}={value!r}" for name, value in group.items())
    reason = (
        f"the sum of group {named} is beyond a double's range, so its aggregate is written with sum and "
        f"mean {non_finite_text(total)}; its values reach {vmin:g}..{vmax:g}: check the producer of these events"
    )
    return dead_letter(reason, group, f"aggregate:{group['window_start']}")


class OverflowDeadLetters(beam.DoFn):
    """Dead letters for the overflowing groups of window shards or of aggregate records.

    Takes ((start_ms, end_ms, shard), Groups) (bounded), (shard, Groups) in a Beam window
    (`windowed`, streaming) or aggregate record dicts (sessions). Yields, per element with any,
    one `dead_letter_lines` element: the form WriteDeadLetters writes."""

    def __init__(self, dimensions: Sequence[str], windowed: bool) -> None:
        self._dims = tuple(dimensions)
        self._windowed = windowed
        self._dead = Counter(DEAD_LETTERS)  # also seen live, by the progress line and --metrics_port

    def process(self, element: Any, window: Any = beam.DoFn.WindowParam) -> Iterator[bytes]:  # noqa: ANN401
        dead = list(self._dead_letters(element, window))
        if dead:
            self._dead.inc(len(dead))
            yield dead_letter_lines(dead)

    def _dead_letters(self, element: Any, window: Any) -> Iterator[dict[str, Any]]:  # noqa: ANN401
        if isinstance(element, dict):
            if not math.isfinite(element["sum"]):
                group = {name: element[name] for name in ("window_start", "window_end", *self._dims, "count")}
                yield overflow_dead_letter(group, element["sum"], element["min"], element["max"])
            return
        key, groups = element
        start_ms, end_ms = window_bounds_ms(window) if self._windowed else key[:2]
        for dims, partial in groups.items():
            if partial.overflowed:
                group = {"window_start": iso_utc(start_ms), "window_end": iso_utc(end_ms)}
                group.update(zip(self._dims, dims, strict=True))
                group["count"] = partial.count
                yield overflow_dead_letter(group, partial.total, partial.vmin, partial.vmax)
