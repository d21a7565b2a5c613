"""Freshness of the streaming pipeline through the product CLI, and its bounded Kinesis read rate.

    python -m benchmarks.freshness [--runner PrismRunner] [--rates 1000,5000] [--duration 25] [--skip-bounded]

For each offered rate: a fresh kinesalite stream, `python -m pipelines.run --runner PrismRunner
--streaming --early_firing 0.5` reading it (the CLI exactly as a user runs it, on Beam's portable
local runner, which fires processing-time panes while the read goes on), and a producer that puts
events at that rate with the wall-clock send time inside. The measured phase starts only once a
probe event has come out in a pane (pipeline start-up excluded). Latencies come from pane counts
and the pane files' write times (benchmarks.freshness_stats). The run ends with Ctrl-C (SIGINT),
as a user stops it: the reads end and every open window is written.

Then "bounded Kinesis read": a pre-loaded stream read with `python -m pipelines.run --streaming
--kinesis_read_to_latest` on the DirectRunner, beside a raw GetRecords loop over the same stream
(the emulator's ceiling).

Without the Kinesis reader or kinesalite (node + `npm ci`), it says why and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.freshness_kinesis import (
    KinesisUnavailable,
    create_stream,
    kinesis_unavailable_reason,
    produce_paced,
    read_panes,
    start_service,
    wait_until_live,
)
from benchmarks.freshness_stats import (
    event_latencies,
    first_inclusion_ms,
    pane_latencies,
    percentile,
    summarize,
    sustained_rate,
)
from benchmarks.throughput import machine

RESULTS = Path(__file__).resolve().parent / "results"
REGION = "us-east-1"


def _stop(proc: subprocess.Popen, grace_s: float = 60.0) -> None:
    """Ctrl-C the pipeline (its reads end and it writes every open window), then end its process
    group if it has not finished within `grace_s`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def runner_args(args: argparse.Namespace) -> list[str]:
    """--runner (and --prism_location) of the measured pipeline, plus a one-second file roll where
    the CLI gathers panes into rolls (a longer roll delays every pane by up to its length)."""
    from pipelines.run import _help_parser

    flags = ["--runner", args.runner]
    if args.prism_location:
        flags += ["--prism_location", args.prism_location]
    if "--file_roll" in _help_parser()._option_string_actions:
        flags += ["--file_roll", "1"]
    return flags


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of `pid` and its descendants so far (0 if unknown or gone)."""
    if pid is None:
        return 0.0
    from benchmarks.memory import child_processes

    tree = child_processes()
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(tree.get(current, ()))
        try:
            with open(f"/proc/{current}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def _cpu_snapshot(pipeline_pid: int, service: Any) -> dict[str, float]:
    handle = getattr(service, "handle", None)
    server = getattr(getattr(handle, "proc", None), "pid", None)
    times = os.times()
    return {
        "pipeline": cpu_seconds(pipeline_pid),
        "kinesalite": cpu_seconds(server),
        "producer": times.user + times.system,
    }


def _drain(sent: dict, output: Path, expected: int, max_s: float) -> float:
    """Wait until every measured event is in some pane, or `max_s`; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        time.sleep(1.0)
        _, missing = event_latencies(sent, read_panes(output))
        if missing == 0:
            break
    return time.monotonic() - started


def run_rate(service: Any, rate: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    client = service.client()
    stream = f"fresh-{rate}-{uuid.uuid4().hex[:6]}"
    create_stream(client, stream, args.shards)
    output = work / stream
    log_path = work / f"{stream}.log"
    command = [
        sys.executable, "-m", "pipelines.run", *runner_args(args),
        "--streaming", "--early_firing", f"{args.early_firing:g}", "--window", f"fixed:{args.window}",
        "--allowed_lateness", str(args.allowed_lateness),
        "--source", f"kinesis://{stream}?region={REGION}",
        "--kinesis_endpoint_url", service.endpoint_url,
        "--kinesis_start_position", "TRIM_HORIZON", "--kinesis_poll_interval", "0.2",
        "--output", str(output), "--dead_letter", str(work / f"{stream}_dead_letter"),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, env={**os.environ, **service.env()}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
    try:
        live_s = wait_until_live(client, stream, output, args.startup_timeout, lambda: proc.poll() is None)
        print(
            f"[{rate:>6}/s] pipeline live after {live_s:.1f} s; producing for {args.duration:.0f} s ...",
            file=sys.stderr,
        )
        cpu_before, wall_before = _cpu_snapshot(proc.pid, service), time.monotonic()
        sendlog = produce_paced(client, stream, rate, args.duration, args.keys, args.window)
        drained_s = _drain(sendlog.sent, output, sendlog.count, args.drain)
        cpu_after, wall = _cpu_snapshot(proc.pid, service), time.monotonic() - wall_before
    finally:
        _stop(proc)
    panes = read_panes(output)
    latencies, missing = event_latencies(sendlog.sent, panes)
    rates = sustained_rate(sendlog.sent, panes)
    row: dict[str, Any] = {
        "offered_per_s": rate,
        "achieved_per_s": rates["offered_per_s"],  # what the producer managed to put
        "sustained_per_s": rates["sustained_per_s"],
        "events": sendlog.count,
        "not_in_any_pane": missing,
        "event_latency": summarize(latencies),
        "pane_latency": summarize(pane_latencies(sendlog.sent, panes)),
        "put_calls": sendlog.put_calls,
        "put_seconds": round(sendlog.put_seconds, 2),
        "startup_s": round(live_s, 1),
        "drain_s": round(drained_s, 1),
        # Share of one core each process used from the start of production to the end of the drain.
        "cpu_cores_used": {k: round((cpu_after[k] - cpu_before[k]) / wall, 2) for k in cpu_before},
    }
    in_order = _in_send_order(sendlog.sent, panes)
    third = len(in_order) // 3
    if third:
        # Latency that grows from the first to the last third of the run means a growing backlog.
        row["p99_first_third_ms"] = round(percentile(in_order[:third], 99), 1)
        row["p99_last_third_ms"] = round(percentile(in_order[-third:], 99), 1)
    if not args.keep:
        shutil.rmtree(output, ignore_errors=True)
    return row


def _in_send_order(sent: dict, panes: dict) -> list[float]:
    """Event latencies ordered by send time (events in no pane left out)."""
    pairs = []
    for group, times in sent.items():
        for sent_at, included in zip(times, first_inclusion_ms(times, panes.get(group, ())), strict=True):
            if included is not None:
                pairs.append((sent_at, included - sent_at))
    pairs.sort()
    return [lat for _, lat in pairs]


def _raw_read_rate(client: Any, stream: str) -> tuple[int, float]:
    """(records, seconds) of reading every shard to its end with plain GetRecords calls."""
    shards = [s["ShardId"] for s in client.list_shards(StreamName=stream)["Shards"]]
    started = time.monotonic()
    total = 0
    for shard in shards:
        iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            total += len(response["Records"])
            iterator = response.get("NextShardIterator")
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
    return total, time.monotonic() - started


def _run_cli(service: Any, stream: str, output: Path, log_path: Path) -> tuple[float, int]:
    command = [
        sys.executable, "-m", "pipelines.run", "--streaming",
        "--source", f"kinesis://{stream}?region={REGION}",
        "--kinesis_endpoint_url", service.endpoint_url,
        "--kinesis_start_position", "TRIM_HORIZON", "--kinesis_read_to_latest",
        "--output", str(output),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, env={**os.environ, **service.env()}, capture_output=True,
        cwd=Path(__file__).resolve().parents[1], check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    log_path.write_bytes(done.stdout + b"\n" + done.stderr)
    if done.returncode:
        raise RuntimeError(f"pipelines.run failed ({done.returncode}); see {log_path}")
    match = re.search(rb"records read\s+([\d,]+)", done.stdout)
    return seconds, int(match.group(1).replace(b",", b"")) if match else -1


def bounded_read(service: Any, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Streaming DirectRunner (--streaming), bounded Kinesis read (--kinesis_read_to_latest)."""
    from io_connectors.kinesis_producer import KinesisPutter
    from io_connectors.synthetic import SyntheticConfig, generate

    client = service.client()
    empty = f"empty-{uuid.uuid4().hex[:6]}"
    bulk = f"bulk-{uuid.uuid4().hex[:6]}"
    create_stream(client, empty, args.bounded_shards)
    create_stream(client, bulk, args.bounded_shards)
    print(f"[bounded] loading {args.bounded_events:,} events into {args.bounded_shards} shard(s) ...", file=sys.stderr)
    putter = KinesisPutter(client, bulk)
    started = time.monotonic()
    config = SyntheticConfig(events=args.bounded_events, keys=args.keys, malformed=0.0)
    for index, data in enumerate(generate(config, 0, args.bounded_events)):
        putter.add(data, str(index))
    putter.flush()
    load_s = time.monotonic() - started
    raw_records, raw_s = _raw_read_rate(client, bulk)
    print("[bounded] empty-stream run (start-up cost) ...", file=sys.stderr)
    startup_s, _ = _run_cli(service, empty, work / empty, work / f"{empty}.log")
    print("[bounded] full read ...", file=sys.stderr)
    wall_s, read = _run_cli(service, bulk, work / bulk, work / f"{bulk}.log")
    if read != args.bounded_events:
        raise RuntimeError(f"bounded read got {read} records, expected {args.bounded_events}")
    steady = read / (wall_s - startup_s) if wall_s > startup_s else None
    return {
        "source": "kinesis (kinesalite)",
        "shards": args.bounded_shards,
        "events": read,
        "wall_s": round(wall_s, 2),
        "startup_s": round(startup_s, 2),
        "events_per_s_wall": round(read / wall_s),
        "events_per_s_after_startup": round(steady) if steady else None,
        "raw_getrecords_per_s": round(raw_records / raw_s) if raw_s else None,
        "load_puts_per_s": round(args.bounded_events / load_s),
    }


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def print_table(results: dict[str, Any]) -> None:
    print(f"\nFreshness, {results['runner']} + Kinesis reader on kinesalite ({results['machine']}, shared machine)")
    settings = results["settings"]
    print(
        f"early panes every {settings['early_firing_s']} s, allowed lateness {settings.get('allowed_lateness_s')} s,"
        f" {settings['shards']} shard(s), {settings['duration_s']:.0f} s per rate"
    )
    header = (
        "offered/s",
        "achieved/s",
        "sustained/s",
        "events",
        "missing",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "pane p99 ms",
    )
    print(" | ".join(f"{h:>11}" for h in header))
    for row in results["rates"]:
        lat, pane = row["event_latency"], row["pane_latency"]
        cells = (
            row["offered_per_s"],
            row["achieved_per_s"],
            row["sustained_per_s"],
            row["events"],
            row["not_in_any_pane"],
            lat["p50_ms"],
            lat["p95_ms"],
            lat["p99_ms"],
            lat["max_ms"],
            pane["p99_ms"],
        )
        print(" | ".join(f"{_fmt(c):>11}" for c in cells))
    print("\nCPU used during each run (cores; the machine has 2, shared with other jobs):")
    for row in results["rates"]:
        used = ", ".join(f"{name} {cores:.2f}" for name, cores in row["cpu_cores_used"].items())
        print(f"  {row['offered_per_s']:>6,}/s: {used}")
    bounded = results.get("bounded_read")
    if bounded:
        print(
            f"\nDirectRunner, bounded Kinesis read "
            f"({bounded['events']:,} events, {bounded['shards']} shards):"
            f" {bounded['events_per_s_wall']:,} events/s end to end ({bounded['wall_s']} s),"
            f" {_fmt(bounded['events_per_s_after_startup'])} events/s after the {bounded['startup_s']} s start-up;"
            f" raw GetRecords ceiling {_fmt(bounded['raw_getrecords_per_s'])} records/s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.freshness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runner",
        default="PrismRunner",
        help="--runner of the measured pipeline: one that fires processing-time panes during an unbounded "
        "read (the local DirectRunner does not). Default: %(default)s",
    )
    parser.add_argument(
        "--prism-location",
        default=None,
        help="--prism_location of the pipeline: a prism binary (default: the one `make install` put in "
        ".cache/runners/bin).",
    )
    parser.add_argument(
        "--rates", default="1000,5000", help="Offered events/s, comma-separated. Default: %(default)s"
    )
    parser.add_argument(
        "--duration", type=float, default=25.0, help="Seconds of production per rate. Default: %(default)s"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=20.0,
        help="At most this many seconds after production for the last events to come out. Default: %(default)s",
    )
    parser.add_argument(
        "--early-firing",
        type=float,
        default=0.5,
        help="--early_firing of the pipeline: seconds between early panes (fractions on PrismRunner). "
        "Default: %(default)s",
    )
    parser.add_argument("--window", type=int, default=60, help="Fixed window size, seconds. Default: %(default)s")
    parser.add_argument(
        "--allowed-lateness",
        type=float,
        default=60.0,
        help="--allowed_lateness of the pipeline: the watermark follows arrival times, which run a little "
        "ahead of the events' own send times; lateness keeps the events still in flight for a closed "
        "window (as LATE panes). Default: %(default)s",
    )
    parser.add_argument("--keys", type=int, default=50, help="Keys per region (3 regions). Default: %(default)s")
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="Shards of each freshness stream; 1 keeps send order, which the latency definition "
        "relies on. Default: %(default)s",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="Seconds to wait for the pipeline's first pane. Default: %(default)s",
    )
    parser.add_argument(
        "--bounded-events",
        type=int,
        default=200_000,
        help="Events pre-loaded for the bounded-read throughput run. Default: %(default)s",
    )
    parser.add_argument("--bounded-shards", type=int, default=2, help="Shards of that stream. Default: %(default)s")
    parser.add_argument("--skip-bounded", action="store_true", help="Skip the bounded-read throughput run.")
    parser.add_argument("--skip-freshness", action="store_true", help="Skip the freshness runs.")
    parser.add_argument("--keep", action="store_true", help="Keep the pipelines' output and logs (printed at the end).")
    parser.add_argument(
        "--results-dir", default=str(RESULTS), help="Where freshness.json goes. Default: benchmarks/results"
    )
    args = parser.parse_args(argv)
    try:
        rates = [int(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates {args.rates!r}: give whole numbers of events/s, e.g. 1000,5000")
    if any(r <= 0 for r in rates) or args.duration <= 0 or args.early_firing <= 0:
        parser.error("rates, --duration and --early-firing must be positive")

    reason = kinesis_unavailable_reason()
    if reason:
        print(f"error: freshness needs the Kinesis reader on kinesalite, and {reason}.", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "runner": f"{args.runner} through python -m pipelines.run",
        "settings": {
            "allowed_lateness_s": args.allowed_lateness,
            "early_firing_s": args.early_firing,
            "shards": args.shards,
            "duration_s": args.duration,
            "window_s": args.window,
            "keys": args.keys,
            "regions": 3,
        },
        "rates": [],
    }
    work = Path(tempfile.mkdtemp(prefix="freshness-"))
    try:
        service = start_service()
    except KinesisUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if not args.skip_freshness:
            for rate in rates:
                results["rates"].append(run_rate(service, rate, args, work))
        if not args.skip_bounded:
            results["bounded_read"] = bounded_read(service, args, work)
    finally:
        service.handle.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"outputs and logs kept in {work}", file=sys.stderr)
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "freshness.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {out_dir / 'freshness.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
