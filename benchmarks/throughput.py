"""Throughput of the pipeline side by side with its baselines, on the same seeded data.

    python -m benchmarks.throughput [--workloads W1,W2,W1-avro] [--runs 3] [--variants ...]

Each variant runs in its own process (peak RSS is that process's), every run of every
variant is interleaved with the others so that machine noise hits them alike, and all
variants must produce the same aggregates before any figure is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.workloads import WORKLOADS, materialize

VARIANTS = ("limit", "naive-beam", "pipeline", "pipeline-2proc", "bytewax")
EXACT_FIELDS = ("count", "min", "max", "p50", "p95", "p99", "distinct_ids")
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def run_variant(name: str, path: Path, fmt: str, out: Path) -> tuple[float, int]:
    """(seconds, peak RSS in MiB) of one run in a fresh process."""
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.variants", name, str(path), fmt, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"variant {name} failed ({proc.returncode}):\n{stderr.decode()[-3000:]}")
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    return report["seconds"], report.get("peak_rss_mib", 0)


def load_aggregates(out: Path) -> dict[tuple, dict]:
    groups: dict[tuple, dict] = {}
    for path in out.rglob("*.jsonl"):
        if "dead_letter" in path.parts:
            continue
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            key = (record["window_start"], record["region"], record["key"])
            if key in groups:
                raise AssertionError(f"{out}: group {key} written twice")
            groups[key] = record
    return groups


def compare(reference: dict[tuple, dict], other: dict[tuple, dict], name: str) -> None:
    if set(reference) != set(other):
        missing, extra = set(reference) - set(other), set(other) - set(reference)
        raise AssertionError(f"{name}: {len(missing)} groups missing, {len(extra)} extra, e.g. {list(missing)[:3]}")
    for key, want in reference.items():
        got = other[key]
        for field in EXACT_FIELDS:
            if got[field] != want[field]:
                raise AssertionError(f"{name}: group {key} {field} = {got[field]}, expected {want[field]}")
        for field in ("sum", "mean"):
            if abs(got[field] - want[field]) > 1e-9 * max(1.0, abs(want[field])):
                raise AssertionError(f"{name}: group {key} {field} = {got[field]}, expected {want[field]}")


def available(variants: list[str]) -> tuple[list[str], dict[str, str]]:
    skipped = {}
    if "bytewax" in variants:
        try:
            import bytewax  # noqa: F401
        except ImportError:
            skipped["bytewax"] = "not installed: pip install '.[bench]'"
    return [v for v in variants if v not in skipped], skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workloads", default="W1,W2,W1-avro", help="Comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="Comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--runs", type=int, default=3, help="Runs per variant; the median is reported. Default: 3")
    parser.add_argument("--data-dir", default="bench_data", help="Where workloads are cached. Default: bench_data")
    parser.add_argument("--results-dir", default=str(RESULTS), help="Where the JSON and PNG go.")
    args = parser.parse_args(argv)
    variants, skipped = available([v.strip() for v in args.variants.split(",") if v.strip()])
    for name, reason in skipped.items():
        print(f"skipping {name}: {reason}", file=sys.stderr)
    unknown = [w for w in args.workloads.split(",") if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")

    results: dict[str, dict] = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "workloads": {}}
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        for wname in args.workloads.split(","):
            workload = WORKLOADS[wname]
            print(f"[{wname}] preparing {workload.events:,} events ...", file=sys.stderr)
            path = materialize(workload, Path(args.data_dir))
            fmt = "avro" if workload.fmt == "avro" else "json"
            timings: dict[str, list[float]] = {v: [] for v in variants}
            rss: dict[str, int] = {v: 0 for v in variants}
            reference: dict[tuple, dict] | None = None
            for run in range(args.runs):
                for variant in variants:
                    out = scratch / wname / variant
                    print(f"[{wname}] run {run + 1}/{args.runs}: {variant} ...", file=sys.stderr)
                    seconds, peak = run_variant(variant, path, fmt, out)
                    timings[variant].append(seconds)
                    rss[variant] = max(rss[variant], peak)
                    if run == 0:
                        aggregates = load_aggregates(out)
                        if reference is None:
                            reference = aggregates
                        else:
                            compare(reference, aggregates, f"{wname}/{variant}")
            rows = {}
            for variant in variants:
                median = statistics.median(timings[variant])
                rows[variant] = {
                    "events_per_s": workload.events / median,
                    "min_events_per_s": workload.events / max(timings[variant]),
                    "max_events_per_s": workload.events / min(timings[variant]),
                    "seconds": timings[variant],
                    "peak_rss_mib": rss[variant],
                    "groups": len(reference or {}),
                }
            results["workloads"][wname] = rows
            print_table(wname, rows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "throughput.json").write_text(json.dumps(results, indent=2))
    chart(results, results_dir / "throughput.png")
    print(
        f"\n{results['machine']}\nresults: {results_dir / 'throughput.json'}, chart: {results_dir / 'throughput.png'}"
    )
    return 0


def print_table(workload: str, rows: dict[str, dict]) -> None:
    ours = rows.get("pipeline", {}).get("events_per_s")
    print(f"\n{workload} ({next(iter(rows.values()))['groups']:,} window groups; all variants' aggregates equal)")
    print(f"{'variant':<16}{'events/s (median)':>18}{'min-max':>22}{'peak RSS':>11}{'pipeline / this':>17}")
    for name, row in rows.items():
        ratio = f"{ours / row['events_per_s']:.2f}x" if ours else "-"
        spread = f"{row['min_events_per_s']:,.0f}-{row['max_events_per_s']:,.0f}"
        print(f"{name:<16}{row['events_per_s']:>18,.0f}{spread:>22}{row['peak_rss_mib']:>8} MiB{ratio:>17}")


def chart(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install '.[bench]'): no chart", file=sys.stderr)
        return
    workloads = list(results["workloads"])
    variants = list(next(iter(results["workloads"].values())))
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        values = [results["workloads"][w][variant]["events_per_s"] / 1000 for w in workloads]
        bars = ax.bar([x + i * width for x in range(len(workloads))], values, width, label=variant)
        ax.bar_label(bars, fmt="%.0fk", fontsize=7)
    ax.set_xticks([x + width * (len(variants) - 1) / 2 for x in range(len(workloads))], workloads)
    ax.set_ylabel("thousand events/s (median)")
    ax.set_title(f"DirectRunner throughput, 1M events\n{results['machine']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
