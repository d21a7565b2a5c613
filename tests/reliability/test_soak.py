"""Load: a streaming Kinesis run at a fixed offered rate, sampled every second, keeps its
threads and open files flat and its memory bounded.

By default this is the short version (25 s at 300 events/s) of the 5-minute soak; set
SOAK_SECONDS=300 to run the full one here, or run `python -m benchmarks.soak` (same code)."""

from __future__ import annotations

import os

import pytest

from benchmarks.soak import run_soak

pytestmark = pytest.mark.integration
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "25"))


def test_soak_threads_files_and_memory_stay_flat(kinesis_service, tmp_path):
    """After warm-up, the second half of the samples has no more threads or open files than
    the first half, and resident memory stays within 1.6x of the first half's median (the short
    run still includes the growth of the first windows' state; the full soak shows it flat)."""
    result = run_soak(kinesis_service, SOAK_SECONDS, rate=300, output=tmp_path / "out")
    assert result.exit_status is None, "the run ended before the soak did"
    assert result.sent > 0
    assert len(result.samples) >= 10  # one a second
    summary = result.summary()
    assert summary["threads_second_half_max"] <= summary["threads_first_half_max"] + 2, summary
    assert summary["open_files_second_half_max"] <= summary["open_files_first_half_max"] + 2, summary
    assert summary["rss_mib_second_half_max"] <= 1.6 * summary["rss_mib_first_half_median"], summary
