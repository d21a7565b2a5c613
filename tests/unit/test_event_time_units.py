"""--event_time_unit reaches every reader of event times, not only the decoder: the Kinesis
event-time watermark and the dedupe step read the same numbers in the same unit."""

from __future__ import annotations

import orjson

from io_connectors.kinesis import event_times_ms
from transforms.dedupe import PASS_THROUGH, _SplitById
from transforms.windowing import parse_window

SECONDS = 1_767_225_600  # 2026-01-01T00:00:00Z in epoch seconds


def test_kinesis_watermark_times_follow_the_unit():
    records = [orjson.dumps({"event_time": SECONDS + 5}), orjson.dumps({"event_time": "2026-01-01T00:00:01Z"})]
    assert event_times_ms(records, "event_time", "s") == [(SECONDS + 5) * 1000, SECONDS * 1000 + 1000]
    # Read as millis, the seconds value is a unit mistake: skipped, as the decoder dead-letters it.
    assert event_times_ms(records, "event_time") == [SECONDS * 1000 + 1000]


def test_dedupe_reads_times_in_the_unit():
    record = orjson.dumps({"event_id": "a", "event_time": SECONDS + 61})
    window = parse_window("fixed:60")
    in_seconds = _SplitById("event_id", "event_time", window, 4, time_unit="s")._key(record)
    assert in_seconds[1:] == ((SECONDS + 60) * 1000, "a")
    assert _SplitById("event_id", "event_time", window, 4)._key(record)[1] == PASS_THROUGH
