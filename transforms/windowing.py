"""Window specs (`fixed:60`, `sliding:300,60`, `session:30`) and event-time assignment.

Windows are assigned to pre-aggregated partials, not to events: a partial already knows
its window, so the Beam WindowFns below read the window from the element instead of
computing it per event (Timestamp and window objects per event cost a third of the time).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.transforms import trigger as beam_trigger
from apache_beam.transforms import window as beam_window
from apache_beam.utils.timestamp import Duration, Timestamp

KINDS = ("fixed", "sliding", "session")


class WindowSpecError(ValueError):
    """A --window value that cannot be parsed; the message shows the accepted forms."""


@dataclass(frozen=True)
class WindowSpec:
    """Window kind and sizes in milliseconds (`period_ms` for sliding, `gap_ms` for session)."""

    kind: str
    size_ms: int = 0
    period_ms: int = 0
    gap_ms: int = 0

    @property
    def merging(self) -> bool:
        return self.kind == "session"

    def assign(self, time_ms: int) -> list[tuple[int, int]]:
        """The (start, end) windows, in ms, that contain an event at `time_ms` (not sessions)."""
        if self.kind == "fixed":
            start = time_ms - time_ms % self.size_ms
            return [(start, start + self.size_ms)]
        if self.kind == "sliding":
            last = time_ms - time_ms % self.period_ms
            return [(s, s + self.size_ms) for s in range(last, time_ms - self.size_ms, -self.period_ms)]
        raise ValueError("session windows depend on neighbouring events; use the session path")

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{self.size_ms // 1000:g}"
        if self.kind == "sliding":
            return f"sliding:{self.size_ms / 1000:g},{self.period_ms / 1000:g}"
        return f"session:{self.gap_ms / 1000:g}"


# Longest window, gap or period (a leap year): beyond it a window is surely a typo, and far
# beyond it window ends overflow the timestamps of Beam and of the output's ISO-8601 strings.
MAX_WINDOW_S = 366 * 24 * 3600
# Most sliding windows one event can fall into (size / period): every event is copied into each.
MAX_WINDOWS_PER_EVENT = 10_000
FORMS = "use fixed:60, sliding:300,60 or session:30"


def _seconds_to_ms(text: str, what: str, raw: str) -> int:
    try:
        seconds = float(text)
    except ValueError:
        raise WindowSpecError(f"--window {raw!r}: {what} {text!r} is not a number of seconds; {FORMS}.") from None
    if not math.isfinite(seconds):
        raise WindowSpecError(f"--window {raw!r}: {what} {text!r} is not a finite number of seconds; {FORMS}.")
    if seconds > MAX_WINDOW_S:
        raise WindowSpecError(
            f"--window {raw!r}: {what} {seconds:g} s is over the limit of {MAX_WINDOW_S} s (366 days); "
            "give a shorter one."
        )
    millis = int(round(seconds * 1000))
    if millis <= 0:
        raise WindowSpecError(f"--window {raw!r}: {what} {text!r} must be at least 0.001 seconds (1 ms); {FORMS}.")
    return millis


def parse_window(raw: str) -> WindowSpec:
    """Parse `fixed:SIZE`, `sliding:SIZE,PERIOD` or `session:GAP` (seconds, finite, 0.001 to 366 days)."""
    kind, sep, rest = (raw or "").strip().partition(":")
    kind = kind.lower()
    if kind not in KINDS or not sep:
        raise WindowSpecError(f"--window {raw!r} is not understood; {FORMS}.")
    if kind == "fixed":
        return WindowSpec("fixed", size_ms=_seconds_to_ms(rest, "size", raw))
    if kind == "session":
        return WindowSpec("session", gap_ms=_seconds_to_ms(rest, "gap", raw))
    size_text, comma, period_text = rest.partition(",")
    if not comma:
        raise WindowSpecError(f"--window {raw!r}: sliding windows need SIZE,PERIOD, e.g. sliding:300,60.")
    size = _seconds_to_ms(size_text, "size", raw)
    period = _seconds_to_ms(period_text, "period", raw)
    if period > size:
        raise WindowSpecError(f"--window {raw!r}: the period must not exceed the size.")
    if size % period:
        raise WindowSpecError(f"--window {raw!r}: the size must be a multiple of the period.")
    if size // period > MAX_WINDOWS_PER_EVENT:
        raise WindowSpecError(
            f"--window {raw!r} puts each event in {size // period:,} windows, over the limit of "
            f"{MAX_WINDOWS_PER_EVENT:,}; give a longer period or a shorter size."
        )
    return WindowSpec("sliding", size_ms=size, period_ms=period)


@functools.lru_cache(maxsize=65536)
def iso_utc(millis: int) -> str:
    """Epoch millis -> ISO-8601 UTC with a trailing Z (millisecond precision only when needed)."""
    stamp = datetime.fromtimestamp(millis / 1000, tz=UTC)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if millis % 1000:
        text += f".{millis % 1000:03d}"
    return text + "Z"


def interval_window(start_ms: int, end_ms: int) -> beam_window.IntervalWindow:
    return beam_window.IntervalWindow(Timestamp(micros=start_ms * 1000), Timestamp(micros=end_ms * 1000))


def window_bounds_ms(window: beam_window.IntervalWindow) -> tuple[int, int]:
    return window.start.micros // 1000, window.end.micros // 1000


class PartialWindows(beam_window.NonMergingWindowFn):
    """Places a keyed partial `((start_ms, end_ms, dims), acc)` in the window it was built for."""

    def assign(self, context: beam_window.WindowFn.AssignContext) -> list[beam_window.IntervalWindow]:
        (start_ms, end_ms, _), _ = context.element
        return [interval_window(start_ms, end_ms)]

    def get_window_coder(self):  # noqa: ANN201 - Beam's coder type
        from apache_beam.coders import coders

        return coders.IntervalWindowCoder()


class PartialSessions(beam_window.Sessions):
    """Session windows whose proto-session comes from the partial, then merged as Sessions do."""

    def assign(self, context: beam_window.WindowFn.AssignContext) -> list[beam_window.IntervalWindow]:
        (start_ms, end_ms, _), _ = context.element
        return [interval_window(start_ms, end_ms)]


def beam_window_fn(spec: WindowSpec) -> beam_window.WindowFn:
    if spec.merging:
        return PartialSessions(Duration(micros=spec.gap_ms * 1000))
    return PartialWindows()


class AfterProcessingTimeMs(beam_trigger.AfterProcessingTime):
    """Beam's AfterProcessingTime with a delay that may be a fraction of a second.

    Beam's own writes `delay_millis` as `delay * 1000` unconverted, so a fractional delay fails
    to translate; this one rounds to whole milliseconds, the unit of the runner API. Runners that
    rebuild the trigger in Python (the DirectRunner's) read it back in whole seconds, so fractions
    are accepted only where the runner evaluates the proto itself (pipelines.config checks)."""

    def __repr__(self) -> str:
        return f"AfterProcessingTime(delay={self.delay:g})"

    def to_runner_api(self, context: object) -> beam_runner_api_pb2.Trigger:
        delay = beam_runner_api_pb2.TimestampTransform(
            delay=beam_runner_api_pb2.TimestampTransform.Delay(delay_millis=int(round(self.delay * 1000)))
        )
        return beam_runner_api_pb2.Trigger(
            after_processing_time=beam_runner_api_pb2.Trigger.AfterProcessingTime(timestamp_transforms=[delay])
        )


def build_trigger(early_firing_s: float | None, allowed_lateness_s: float) -> beam_trigger.TriggerFn:
    """On-time pane at the watermark, optional processing-time early panes, one late pane per late batch.

    The late trigger is always explicit, even when no lateness is allowed (the runner then drops
    late data before it reaches the trigger): without one, Prism evaluates its default late trigger,
    which fires on any firing after the window's end, also for an early-firing timer that outlived
    its window's state, and Prism 2.77 then fails the job ("assignment to entry in nil map")."""
    early = AfterProcessingTimeMs(early_firing_s) if early_firing_s else None
    return beam_trigger.AfterWatermark(early=early, late=beam_trigger.AfterCount(1))
