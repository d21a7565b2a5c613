"""One parser for the timestamps users type or events carry: epoch millis or ISO-8601."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


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
