"""The decoder fuzz target, run for a bounded time: coverage-guided with atheris (libFuzzer)
when it is installed, else random mutations of the seeds. Any escaped exception, crash (a
pyarrow SIGSEGV included) or disagreement between the two decode paths fails the test."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
import time
from pathlib import Path

from tests.fuzz.fuzz_decode import one_input, seeds

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 20


def test_decoders_survive_and_agree_under_fuzzing(tmp_path):
    if importlib.util.find_spec("atheris") is None:
        _mutate_for(SECONDS)
        return
    corpus = tmp_path / "corpus"
    run = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.fuzz_decode", str(corpus), f"-max_total_time={SECONDS}", "-timeout=20",
         "-rss_limit_mb=3072", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=SECONDS * 6,
    )
    artifacts = sorted(p.name for p in tmp_path.iterdir() if p.name != "corpus")
    assert run.returncode == 0, (
        f"fuzzing found a failing input (saved as {artifacts}; replay with "
        f"`python -m tests.fuzz.fuzz_decode <file>`):\n{run.stderr[-6000:]}"
    )
    assert "stat::number_of_executed_units" in run.stderr, run.stderr[-2000:]
    executed = int(run.stderr.split("stat::number_of_executed_units:")[1].split()[0])
    assert executed > len(seeds()), "the fuzzer ran no more than its seeds"


def _mutate_for(seconds: float) -> None:
    rng = random.Random(2026)
    pool = seeds()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = bytearray(rng.choice(pool))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data) + 1)
            op = rng.randrange(4)
            if op == 0 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif op == 1:
                data[at:at] = rng.choice([b"\n", b"{", b"}", b"[", b'"', b"\\u", b"NaN", b"e999", b"-0", b"\xff", b" "])
            elif op == 2:
                del data[at : at + rng.randint(1, 4)]
            else:
                data[at:at] = rng.choice(pool)[1:]
        one_input(bytes(data))
