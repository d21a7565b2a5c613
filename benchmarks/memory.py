"""Memory of a bounded read: does resident memory stay flat while millions of events stream by?

    python -m benchmarks.memory [--events 10000000] [--small 1000000] [--sources synthetic,file]

Runs `python -m pipelines.run` (DirectRunner, bounded read, default options) on each source and
samples the resident set size (RSS) of its whole process tree every --interval seconds. Each
source runs at --small events first, then at --events, so that the peak can be compared across a
10x larger input as well as along one run's time. Sources:

* synthetic: `synthetic://?events=N&keys=50&seed=42` (generated inside the pipeline);
* file: an NDJSON file of N seeded events, generated once under --data-dir (10M lines ~1.1 GB).

Output: a table, benchmarks/results/memory.json and benchmarks/results/memory.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def child_processes() -> dict[int, list[int]]:
    """Child pids of every running process, by parent pid (read from /proc)."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # the process ended meanwhile
        # The command name may hold spaces: fields resume after its closing parenthesis.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss_mib(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MiB (0 once they are gone)."""
    tree = child_processes()
    total_pages = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(tree.get(current, ()))
        try:
            with open(f"/proc/{current}/statm", "rb") as handle:
                total_pages += int(handle.read().split()[1])
        except OSError:
            continue
    return total_pages * PAGE_KIB / 1024


def generate_file(path: Path, events: int) -> float:
    """Write `events` seeded NDJSON events to `path` (cached); seconds spent (0 when cached)."""
    if path.exists():
        return 0.0
    from io_connectors.synthetic import SyntheticConfig, generate

    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    config = SyntheticConfig(events=events, keys=50, seed=42)
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as handle:
        chunk = 200_000
        for first in range(0, events, chunk):
            handle.write(b"\n".join(generate(config, first, min(chunk, events - first))) + b"\n")
    partial.rename(path)
    return time.monotonic() - started


def run_sampled(source: str, output: Path, interval: float) -> dict[str, Any]:
    """Run the CLI on `source`, sampling its process tree's RSS; samples are (seconds, MiB)."""
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "pipelines.run", "--source", source, "--output", str(output)]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    samples: list[tuple[float, float]] = []
    while proc.poll() is None:
        rss = tree_rss_mib(proc.pid)
        if rss:
            samples.append((round(time.monotonic() - started, 2), round(rss, 1)))
        time.sleep(interval)
    stdout, stderr = proc.communicate()
    seconds = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(f"pipelines.run --source {source} failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    match = re.search(rb"records read\s+([\d,]+)", stdout)
    read = int(match.group(1).replace(b",", b"")) if match else None
    return {"source": source, "seconds": round(seconds, 1), "records_read": read, "samples": samples}


def flatness(samples: list[tuple[float, float]]) -> dict[str, float | None]:
    """Peak, and how RSS moves once warmed up: min/max over the last 80% of the run and the
    least-squares slope (MiB per minute) over its second half."""
    if len(samples) < 4:
        return {"peak_mib": max((m for _, m in samples), default=None), "steady_min_mib": None,
                "steady_max_mib": None, "slope_mib_per_min": None}  # fmt: skip
    end = samples[-1][0]
    steady = [m for t, m in samples if t >= 0.2 * end]
    half = [(t, m) for t, m in samples if t >= 0.5 * end]
    slope = None
    if len(half) >= 2:
        mean_t = sum(t for t, _ in half) / len(half)
        mean_m = sum(m for _, m in half) / len(half)
        var = sum((t - mean_t) ** 2 for t, _ in half)
        if var:
            slope = sum((t - mean_t) * (m - mean_m) for t, m in half) / var * 60
    return {
        "peak_mib": max(m for _, m in samples),
        "steady_min_mib": min(steady),
        "steady_max_mib": max(steady),
        "slope_mib_per_min": round(slope, 2) if slope is not None else None,
    }


def curve(samples: list[tuple[float, float]], points: int = 10) -> list[tuple[int, float]]:
    """RSS at 10%, 20%, ... 100% of the run (the sample nearest each mark)."""
    if not samples:
        return []
    end = samples[-1][0]
    marks = []
    for step in range(1, points + 1):
        target = end * step / points
        marks.append((step * 100 // points, min(samples, key=lambda s: abs(s[0] - target))[1]))
    return marks


def plot(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        xs = [t for t, _ in run["samples"]]
        ys = [m for _, m in run["samples"]]
        ax.plot(xs, ys, label=f"{run['label']} ({run['events']:,} events, {run['seconds']:.0f} s)")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("RSS of the pipeline process tree (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="Events of the large run. Default: %(default)s")
    parser.add_argument(
        "--small",
        type=int,
        default=1_000_000,
        help="Events of the comparison run first (0: none). Default: %(default)s",
    )
    parser.add_argument(
        "--sources", default="synthetic,file", help="Comma-separated: synthetic, file. Default: %(default)s"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="Seconds between RSS samples. Default: %(default)s")
    parser.add_argument(
        "--data-dir", default="bench_data", help="Where the NDJSON files are cached. Default: %(default)s"
    )
    parser.add_argument("--results-dir", default=str(RESULTS), help="Where memory.json and memory.png go.")
    args = parser.parse_args(argv)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(sources) - {"synthetic", "file"})
    if unknown:
        parser.error(f"unknown source(s) {unknown}; choose synthetic and/or file")
    if args.events <= 0 or args.small < 0 or args.interval <= 0:
        parser.error("--events and --interval must be positive, --small 0 or more")

    from benchmarks.throughput import machine

    sizes = [n for n in (args.small, args.events) if n]
    runs: list[dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp(prefix="memory-"))
    try:
        for source in sources:
            for events in sizes:
                if source == "synthetic":
                    uri = f"synthetic://?events={events}&keys=50&seed=42"
                else:
                    path = Path(args.data_dir).resolve() / f"memory-{events}.jsonl"
                    print(f"[file] preparing {path} ...", file=sys.stderr)
                    generate_file(path, events)
                    uri = f"file://{path}"
                print(f"[{source}] {events:,} events ...", file=sys.stderr)
                run = run_sampled(uri, scratch / f"{source}-{events}", args.interval)
                run.update(label=source, events=events, **flatness(run["samples"]), curve=curve(run["samples"]))
                run["events_per_s"] = round(events / run["seconds"])
                runs.append(run)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    info = machine()
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory.json").write_text(
        json.dumps({"machine": info, "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs}, indent=1) + "\n"
    )
    plot(runs, out_dir / "memory.png", f"Bounded read, DirectRunner (FnApiRunner, in-memory) - {info}")
    print(f"\nRSS of a bounded read, DirectRunner ({info}; shared machine)")
    header = ("source", "events", "seconds", "events/s", "peak MiB", "steady min", "steady max", "MiB/min 2nd half")
    print(" | ".join(f"{h:>12}" for h in header))
    for run in runs:
        cells = (run["label"], f"{run['events']:,}", run["seconds"], f"{run['events_per_s']:,}", run["peak_mib"],
                 run["steady_min_mib"], run["steady_max_mib"], run["slope_mib_per_min"])  # fmt: skip
        print(" | ".join(f"{c!s:>12}" for c in cells))
    print("\nRSS (MiB) at each tenth of the run:")
    print(f"{'run':>24} | " + " | ".join(f"{p:>4}%" for p, _ in runs[0]["curve"]))
    for run in runs:
        print(
            f"{run['label'] + ' ' + format(run['events'], ','):>24} | "
            + " | ".join(f"{m:>5.0f}" for _, m in run["curve"])
        )
    print(f"\nwrote {out_dir / 'memory.json'} and {out_dir / 'memory.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
