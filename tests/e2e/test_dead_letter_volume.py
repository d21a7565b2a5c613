"""Millions of dead letters from a few kilobytes of input: a gzip of 2,000,000 blank lines (each
an "empty record") with good events among them. The run exits 0, every blank line is exactly
one dead letter, the good events aggregate exactly, and the CLI's memory holds one source batch
of dead letters at a time, not all of them: its peak stays far below what grouping them took
(about 1.2 GB for these 2,000,000; 2.8 GB for 5,000,000)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from tests.reliability.helpers import (
    assert_same_aggregates,
    encode,
    expected_aggregates,
    final_aggregates,
    good_events,
    read_panes,
    run_cli_measuring_peak,
)

BLANK_LINES = 2_000_000
GOOD_EVERY = 1_000  # a good event after every 1,000 blank lines: most batches hold both
BATCH_RECORDS = 50_000  # the file reader's largest batch
PEAK_MB_BOUND = 600  # measured here: about 300 MB; grouping every dead letter took about 1.2 GB



def _input(path: Path) -> tuple[list[dict], bytearray]:
    """Writes the gzip; returns the good events and a map of which 1-based lines are blank."""
    events = good_events(BLANK_LINES // GOOD_EVERY, seed=11)
    good = encode(events)
    blank = bytearray(BLANK_LINES + len(good) + 1)  # blank[n] == 1: line n is blank
    chunks, line = [], 0
    for record in good:
        chunks.append(b"\n" * GOOD_EVERY + record + b"\n")
        blank[line + 1 : line + GOOD_EVERY + 1] = b"\1" * GOOD_EVERY
        line += GOOD_EVERY + 1
    path.write_bytes(gzip.compress(b"".join(chunks), 9))
    return events, blank


def _summary_count(summary: str, label: str) -> int:
    match = re.search(rf"^{label}\s+([\d,]+)", summary, re.MULTILINE)
    assert match, f"no {label!r} line in the summary:\n{summary}"
    return int(match.group(1).replace(",", ""))


def test_two_million_blank_lines_are_dead_letters_in_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "e.jsonl.gz"
    events, blank = _input(source)
    assert source.stat().st_size < 100_000  # a few kilobytes of input
    out, dlq = tmp_path / "out", tmp_path / "dlq"
    summary, peak = run_cli_measuring_peak(
        "--source", f"file://{source}", "--output", f"file://{out}", "--dead_letter", f"file://{dlq}", timeout=660
    )

    assert _summary_count(summary, "dead letters") == BLANK_LINES
    assert _summary_count(summary, "events decoded") == len(events)
    assert _summary_count(summary, "records read") == BLANK_LINES + len(events)

    # Every blank line is exactly one dead letter, in files of one batch each, named by digest.
    seen = bytearray(len(blank))
    files = sorted(p for p in dlq.rglob("*") if p.is_file())
    assert files and all(re.fullmatch(r"part-[0-9a-f]{32}\.jsonl", p.name) for p in files), files[:3]
    prefix = f"{source}:"
    for path in files:
        lines = path.read_bytes().splitlines()
        assert 0 < len(lines) <= BATCH_RECORDS, (path.name, len(lines))
        for line in lines:
            letter = json.loads(line)
            assert letter["error"] == "empty record" and letter["payload"] == "", letter
            assert letter["source"].startswith(prefix), letter
            number = int(letter["source"][len(prefix) :])
            assert blank[number] and not seen[number], f"line {number} is not blank or was dead-lettered twice"
            seen[number] = 1
    assert seen == blank

    # The good events aggregate exactly, wherever they sat among the blank lines.
    panes = read_panes(out)
    assert {pane for (*_, pane, _index) in panes} == {"ON_TIME"}
    assert_same_aggregates(final_aggregates(panes), expected_aggregates(events))

    assert int(peak) < PEAK_MB_BOUND, f"peak RSS {peak} MB for {BLANK_LINES:,} dead letters"
