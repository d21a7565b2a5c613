"""Soak: a streaming Kinesis run at a fixed offered rate, its memory, threads and open files
sampled every second.

    python -m benchmarks.soak [--seconds 300] [--rate 500]     # or SOAK_SECONDS=300

Starts kinesalite (the test services' launcher), a producer that puts `rate` events/s with
wall-clock event times, and `python -m pipelines.run --streaming` reading
the stream unbounded; after `seconds` it stops the run and prints the samples' summary as JSON.
`tests/reliability/test_soak.py` runs the same code for 25 s (SOAK_SECONDS overrides it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WARM_UP_FRACTION = 0.3  # imports, first bundles and the first windows' state come first


@dataclass
class Sample:
    t: float
    rss_kib: int
    threads: int
    open_files: int


@dataclass
class SoakResult:
    seconds: float
    rate: int
    sent: int
    samples: list[Sample] = field(default_factory=list)
    early_panes: int = 0
    exit_status: int | None = None

    def steady(self) -> list[Sample]:
        """The samples after the warm-up."""
        start = self.samples[0].t + WARM_UP_FRACTION * (self.samples[-1].t - self.samples[0].t)
        return [s for s in self.samples if s.t >= start]

    def summary(self) -> dict[str, Any]:
        steady = self.steady()
        half = len(steady) // 2
        first, last = steady[:half], steady[half:]
        return {
            "seconds": self.seconds, "rate": self.rate, "sent": self.sent, "samples": len(self.samples),
            "early_panes": self.early_panes,
            "rss_mib_first_half_median": statistics.median(s.rss_kib for s in first) / 1024,
            "rss_mib_second_half_max": max(s.rss_kib for s in last) / 1024,
            "threads_first_half_max": max(s.threads for s in first),
            "threads_second_half_max": max(s.threads for s in last),
            "open_files_first_half_max": max(s.open_files for s in first),
            "open_files_second_half_max": max(s.open_files for s in last),
        }


def _proc_sample(pid: int, t: float) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # the process has exited (a zombie has no memory)
        return None
    return Sample(t, int(fields["VmRSS"].split()[0]), int(fields["Threads"]), fds)


def _produce(client: Any, stream: str, rate: int, until: float, sent: list[int]) -> None:
    """Puts `rate` events per second, in 10 puts a second, until `until` (monotonic)."""
    rng = random.Random(7)
    tick = time.monotonic()
    while tick < until:
        now_ms = int(time.time() * 1000)
        records = [
            {"Data": json.dumps({"event_id": uuid.uuid4().hex, "event_time": now_ms, "region": "eu-west-1",
                                 "key": f"k{rng.randrange(20)}", "value": rng.randrange(1000)}).encode(),
             "PartitionKey": str(rng.random())}
            for _ in range(max(1, rate // 10))
        ]
        client.put_records(StreamName=stream, Records=records)
        sent[0] += len(records)
        tick += 0.1
        time.sleep(max(0.0, tick - time.monotonic()))


def run_soak(service: Any, seconds: float, rate: int, output: Path) -> SoakResult:
    """Runs the soak against a started Kinesis service (a tests.services.KinesisService)."""
    client = service.client()
    stream = f"soak-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=stream, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 200})
    argv = [sys.executable, "-m", "pipelines.run", "--source", f"kinesis://{stream}?region={service.region}",
            "--kinesis_start_position", "TRIM_HORIZON", "--kinesis_poll_interval", "0.5", "--streaming",
            "--output", str(output)]
    job = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **service.env()}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    result = SoakResult(seconds, rate, 0)
    sent = [0]
    started = time.monotonic()
    producer = threading.Thread(target=_produce, args=(client, stream, rate, started + seconds, sent), daemon=True)
    producer.start()
    try:
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            sample = _proc_sample(job.pid, time.monotonic() - started)
            if sample is None or job.poll() is not None:
                break
            result.samples.append(sample)
    finally:
        result.exit_status = job.poll()
        if result.exit_status is None:
            os.killpg(job.pid, signal.SIGTERM)  # only the run this function started
            try:
                job.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait(timeout=30)
        producer.join(timeout=30)
    result.sent = sent[0]
    result.early_panes = sum(1 for p in output.rglob("*.jsonl") if "-EARLY-" in p.name)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)))
    parser.add_argument("--rate", type=int, default=500, help="offered events per second")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.services import start_kinesis

    service = start_kinesis()
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as out:
            result = run_soak(service, args.seconds, args.rate, Path(out))
    finally:
        service.handle.close()
    print(json.dumps({**result.summary(), "samples_raw": [asdict(s) for s in result.samples]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
