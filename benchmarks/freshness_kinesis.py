"""Kinesis side of the freshness benchmark: kinesalite, a paced producer that logs each event's
send time, and the reader of the panes the pipeline wrote.

kinesalite is started through the test-service layer (tests/services), which needs Node.js and
`npm ci` in the repository root.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from transforms.windowing import iso_utc

REPO_ROOT = Path(__file__).resolve().parents[1]
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")
PROBE_REGION = "probe"
TICK_S = 0.05  # one PutRecords call per tick: 500 records (the API cap) at 10k events/s


class KinesisUnavailable(RuntimeError):
    """kinesalite or the Kinesis connector cannot run here; the message says why."""


def kinesis_unavailable_reason() -> str | None:
    """None when the Kinesis reader and kinesalite can run here, else why not."""
    try:
        import boto3  # noqa: F401

        import io_connectors.kinesis  # noqa: F401
    except ModuleNotFoundError as err:
        return f"the Kinesis reader cannot be imported ({err.name} missing)"
    if shutil.which("node") is None:
        return "node is not on PATH (install Node.js 18+)"
    if not (REPO_ROOT / "node_modules" / ".bin" / "kinesalite").exists():
        return "kinesalite is not installed: run `npm ci` in the repository root"
    return None


def start_service() -> Any:  # noqa: ANN401 - tests.services.KinesisService
    reason = kinesis_unavailable_reason()
    if reason:
        raise KinesisUnavailable(reason)
    from tests.services import start_kinesis

    return start_kinesis()


def create_stream(client: Any, stream: str, shards: int) -> None:
    client.create_stream(StreamName=stream, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


def window_start_ms(event_ms: int, window_s: int) -> int:
    return event_ms - event_ms % (window_s * 1000)


@dataclass
class SendLog:
    """Send times (epoch ms) per group (window_start ISO, region, key), in send order."""

    sent: dict[tuple[str, str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    count: int = 0
    first_ms: float | None = None
    last_ms: float | None = None
    put_calls: int = 0
    put_seconds: float = 0.0


def _event(index: int, now_ms: int, region: str, key: str, rng: random.Random) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"f-{index}",
            "event_time": now_ms,  # event time = send time: every event is on time
            "region": region,
            "key": key,
            "value": round(rng.lognormvariate(3.0, 1.0), 3),
            "sent_ms": now_ms,
        }
    )


def produce_paced(
    client: Any,
    stream: str,
    rate: float,
    duration_s: float,
    keys: int,
    window_s: int,
    seed: int = 42,
) -> SendLog:
    """Put `rate` events/s for `duration_s`, one PutRecords call per 50 ms tick; each event's
    send time is the wall clock just before its call. Falls behind (and says so in the log's
    achieved rate) when a call takes longer than a tick."""
    from io_connectors.kinesis_producer import KinesisPutter

    rng = random.Random(seed)
    log = SendLog()
    putter = KinesisPutter(client, stream)
    total = int(rate * duration_s)
    started = time.monotonic()
    index = 0
    while index < total:
        due = min(total, int((time.monotonic() - started + TICK_S) * rate))
        now_ms = int(time.time() * 1000)
        window = iso_utc(window_start_ms(now_ms, window_s))
        while index < due:
            region = REGIONS[rng.randrange(len(REGIONS))]
            key = f"k{rng.randrange(keys):04d}"
            putter.add(_event(index, now_ms, region, key, rng), f"{region}/{key}")
            log.sent[(window, region, key)].append(now_ms)
            index += 1
        call_started = time.monotonic()
        putter.flush()
        log.put_seconds += time.monotonic() - call_started
        log.count = index
        log.first_ms = now_ms if log.first_ms is None else log.first_ms
        log.last_ms = now_ms
        sleep = started + index / rate - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)
    log.put_calls = putter.calls
    return log


def wait_until_live(client: Any, stream: str, output: Path, timeout_s: float, alive: Callable[[], bool]) -> float:
    """Send a probe event every 200 ms until a pane of the probe group is written; seconds waited.

    Starting the measured phase only then keeps the pipeline's start-up out of the latencies."""
    from io_connectors.kinesis_producer import KinesisPutter

    putter = KinesisPutter(client, stream)
    started = time.monotonic()
    index = 0
    while time.monotonic() - started < timeout_s:
        if not alive():
            raise RuntimeError("the pipeline exited before its first pane; see its log")
        now_ms = int(time.time() * 1000)
        putter.add(
            orjson.dumps(
                {"event_id": f"p-{index}", "event_time": now_ms, "region": PROBE_REGION, "key": "probe", "value": 0}
            ),
            "probe",
        )
        putter.flush()
        index += 1
        if any(output.rglob(f"region={PROBE_REGION}/*.jsonl")):
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"no pane written within {timeout_s:.0f} s")


def read_panes(output: Path) -> dict[tuple[str, str, str], list[tuple[float, int]]]:
    """(written_ms, count) of every pane of every group, from the files' modification times.

    The sink writes each pane file under a temporary name and renames it, so a file's mtime is
    the moment its pane was written (a few µs before it became visible)."""
    panes: dict[tuple[str, str, str], list[tuple[float, int]]] = defaultdict(list)
    for path in output.rglob("*.jsonl"):
        if "dead_letter" in path.parts or path.name.startswith(".tmp-"):
            continue
        written_ms = os.stat(path).st_mtime_ns / 1e6
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            if record["region"] == PROBE_REGION:
                continue
            panes[(record["window_start"], record["region"], record["key"])].append((written_ms, record["count"]))
    return panes
