"""One parser for the timestamps users type or events carry: epoch millis or ISO-8601."""

from __future__ import annotations

from datetime import UTC, datetime


def to_epoch_millis(raw: str) -> int:
    """Epoch millis (digits) or ISO-8601 (a trailing Z, or naive, means UTC) -> epoch millis.

    Raises ValueError when the text is neither; callers turn that into their own message."""
    text = raw.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # fromisoformat takes Z only from Python 3.11
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
