"""One parser for the timestamps users type or events carry: epoch millis or ISO-8601, and the
event-time rules every reader and the decoder share (units, accepted range, the reasons given)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Longer digit strings are far outside any unit's range; int() of them is needlessly slow.
_MAX_TIME_DIGITS = 30


def to_epoch_millis(raw: str) -> int:
    """Epoch millis (ASCII digits) or ISO-8601 (a trailing Z, or naive, means UTC) -> epoch millis.

    Sub-millisecond digits are dropped (rounded down) exactly, without going through a float.
    Raises ValueError when the text is neither; callers turn that into their own message."""
    text = raw.strip()
    digits = text[1:] if text.startswith("-") else text
    if digits.isascii() and digits.isdigit():
        return int(text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # fromisoformat takes Z only from Python 3.11
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _ONE_MS


# Accepted event times: [1970-01-01, 2100-01-01) UTC. Anything outside is a dead letter.
MIN_EVENT_TIME_MS = 0
MAX_EVENT_TIME_MS = 4_102_444_800_000
# Plausible event times: [2000-01-01, 2100-01-01). A number before 2000 in the configured unit
# that would be plausible in another unit is a unit mistake (epoch seconds read as millis land
# in January 1970), so it is dead-lettered with the flag to fix it instead of being aggregated
# into a window nobody queries. Numbers before 2000 that fit no other unit (say 1000 ms) stand.
PLAUSIBLE_FROM_MS = 946_684_800_000
# Numeric event time units: (multiplier, divisor) to epoch millis, and the name used in reasons.
TIME_UNITS: dict[str, tuple[int, int]] = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}
UNIT_NAMES = {"s": "epoch seconds", "ms": "epoch millis", "us": "epoch micros", "ns": "epoch nanos"}
class DecodeError(ValueError):
    """Raised for one record; the message becomes the dead-letter reason."""


def parse_event_time(raw: Any, field_name: str, unit: str = "ms") -> int:
    """An event time -> epoch millis, or DecodeError with a reason naming the fix.

    Numbers (and digit strings) are in `unit`; they are scaled exactly to millis and rounded
    down, so 1767225600.1239 s is 1767225600123 ms. A float counts as the decimal it prints
    as (1767225600.123 s is ...123 ms, not ...122 from its binary value). ISO-8601 strings
    (naive means UTC) and datetimes (Avro timestamp logical types; naive means UTC) carry
    their own unit. The result must lie in [1970, 2100) and, for numbers, not look like
    another unit (see PLAUSIBLE_FROM_MS).
    """
    if isinstance(raw, bool) or raw is None:
        raise DecodeError(f"field {field_name!r} is {raw!r}; expected {UNIT_NAMES[unit]} or an ISO-8601 string")
    if isinstance(raw, int):
        return _checked_number(raw, raw, field_name, unit)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise DecodeError(f"field {field_name!r} is {raw!r}; expected finite {UNIT_NAMES[unit]}")
        return _checked_number(Decimal(repr(raw)), raw, field_name, unit)
    if isinstance(raw, str):
        text = raw.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit():
            if len(digits) > _MAX_TIME_DIGITS:
                raise DecodeError(f"field {field_name!r} = {_shown(raw)} is {_range_text(unit)}")
            return _checked_number(int(text), raw, field_name, unit)
        try:
            millis = to_epoch_millis(text)
        except ValueError:
            raise DecodeError(
                f"field {field_name!r} is {_shown(raw)}; expected {UNIT_NAMES[unit]} or ISO-8601 like "
                "2026-01-01T00:00:00Z"
            ) from None
        return _checked_millis(millis, raw, field_name)
    if isinstance(raw, datetime):
        return _checked_millis(datetime_millis(raw), raw, field_name)
    kind = "date without a time" if isinstance(raw, date) else type(raw).__name__
    raise DecodeError(f"field {field_name!r} has type {kind}; expected {UNIT_NAMES[unit]} or ISO-8601")


def datetime_millis(moment: datetime) -> int:
    """Epoch millis of a datetime (naive means UTC), exactly: rounded down, no float on the way."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def to_millis(number: int | Decimal, unit: str) -> int:
    """A number in `unit` -> epoch millis, exactly, rounded down."""
    mul, div = TIME_UNITS[unit]
    if isinstance(number, int):
        return number * mul // div
    return int((number * mul / div).to_integral_value(rounding=ROUND_FLOOR))


def _checked_number(number: int | Decimal, raw: Any, field_name: str, unit: str) -> int:
    millis = to_millis(number, unit)
    if PLAUSIBLE_FROM_MS <= millis < MAX_EVENT_TIME_MS:
        return millis
    # Implausible here: name the unit that would make it plausible, if one does.
    for other in TIME_UNITS:
        if other != unit and PLAUSIBLE_FROM_MS <= to_millis(number, other) < MAX_EVENT_TIME_MS:
            if millis < MIN_EVENT_TIME_MS:
                where = "before 1970"
            elif millis < MAX_EVENT_TIME_MS:
                where = (_EPOCH + timedelta(milliseconds=millis)).date().isoformat()
            else:
                where = "after 2100"
            raise DecodeError(
                f"field {field_name!r} = {_shown(raw)} is {where} as {UNIT_NAMES[unit]}; it looks like "
                f"{UNIT_NAMES[other]}: pass --event_time_unit {other}"
            )
    if MIN_EVENT_TIME_MS <= millis < MAX_EVENT_TIME_MS:
        return millis
    raise DecodeError(f"field {field_name!r} = {_shown(raw)} is {_range_text(unit)}")


def _checked_millis(millis: int, raw: Any, field_name: str) -> int:
    if not MIN_EVENT_TIME_MS <= millis < MAX_EVENT_TIME_MS:
        raise DecodeError(
            f"field {field_name!r} = {_shown(raw)} is outside 1970..2100; event times must lie in "
            "[1970-01-01, 2100-01-01) UTC"
        )
    return millis


def _range_text(unit: str) -> str:
    return (
        f"outside 1970..2100 as {UNIT_NAMES[unit]}, and in no other unit (s, ms, us, ns) within 2000..2100; "
        "fix the producer's clock or the field"
    )


def _shown(raw: Any, limit: int = 80) -> str:
    """repr of a value for a reason, cut: a hostile record must not blow up its own dead letter."""
    text = repr(raw)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
