"""Load: a streaming Kinesis run at a fixed offered rate, its resident memory, threads and open
files sampled every second.

By default this is the short version (25 s at 300 events/s) of the 5-minute soak; set
SOAK_SECONDS=300 to run the full one here, or run `python -m benchmarks.soak` (same code).
One soak run serves both tests of this module."""

from __future__ import annotations

import os
import statistics

import pytest

from benchmarks.soak import SoakResult, run_soak

pytestmark = pytest.mark.integration
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "25"))
MAX_RSS_GROWTH_MIB_PER_S = 0.5  # 1.8 GiB an hour: anything flat stays far below


@pytest.fixture(scope="module")
def soak(kinesis_service, tmp_path_factory) -> SoakResult:
    result = run_soak(kinesis_service, SOAK_SECONDS, rate=300, output=tmp_path_factory.mktemp("soak") / "out")
    assert result.exit_status is None, "the run ended before the soak did"
    assert result.sent > 0
    assert len(result.samples) >= 10  # one a second
    return result


def test_soak_threads_and_open_files_stay_flat(soak):
    """After warm-up, the second half of the samples has no more threads or open files than
    the first half: no leaked clients, connections or files under steady load."""
    summary = soak.summary()
    assert summary["threads_second_half_max"] <= summary["threads_first_half_max"], summary
    assert summary["open_files_second_half_max"] <= summary["open_files_first_half_max"], summary


def test_soak_memory_stays_flat(soak):
    """Resident memory does not trend upwards after warm-up (least-squares slope under
    0.5 MiB/s): the local runner keeps no per-bundle state for the length of an unbounded read
    (without `runners.direct.bound_bundle_metrics` it grows ~6 MiB/s)."""
    steady = soak.steady()
    slope = statistics.linear_regression([s.t for s in steady], [s.rss_kib / 1024 for s in steady]).slope
    assert slope < MAX_RSS_GROWTH_MIB_PER_S, f"RSS grows {slope:.2f} MiB/s"
