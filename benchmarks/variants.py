"""The benchmark variants, each run in its own process by benchmarks.throughput:

`python -m benchmarks.variants NAME INPUT FORMAT OUTDIR` writes the variant's aggregates as
JSON lines to OUTDIR/result.jsonl (or its own files, for the pipeline) and prints
`{"events": N, "seconds": S, "peak_rss_mib": M}`: the time from building the job to its last
output (module imports excluded, for every variant alike).
"""

from __future__ import annotations

import importlib
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import orjson

WINDOW_MS = 60_000


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def quantile(ordered: list[float], rank: float) -> float:
    # The inclusive nearest-rank definition the pipeline uses for exact groups.
    return ordered[max(0, math.ceil(rank * len(ordered)) - 1)]


def metrics(start_ms: int, region: str, key: str, values: list[float], ids: set[str]) -> dict[str, Any]:
    ordered = sorted(values)
    total = math.fsum(values)
    return {
        "window_start": iso(start_ms),
        "window_end": iso(start_ms + WINDOW_MS),
        "region": region,
        "key": key,
        "count": len(values),
        "sum": total,
        "min": ordered[0],
        "max": ordered[-1],
        "mean": total / len(values),
        "p50": quantile(ordered, 0.5),
        "p95": quantile(ordered, 0.95),
        "p99": quantile(ordered, 0.99),
        "distinct_ids": len(ids),
        "pane": "ON_TIME",
        "pane_index": 0,
    }


def read_records(path: str, fmt: str) -> Iterator[dict]:
    """Yields event dicts (the decode step of the hand-written variants)."""
    if fmt == "avro":
        import fastavro

        with open(path, "rb") as handle:
            yield from fastavro.reader(handle)
    else:
        with open(path, "rb") as handle:
            for line in handle:
                yield orjson.loads(line)


def write_result(out: Path, records: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "result.jsonl").open("wb") as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")


def run_limit(path: str, fmt: str, out: Path) -> int:
    """The ceiling for Python: one loop, orjson, a dict of per-group state."""
    groups: dict[tuple, tuple[list[float], set[str]]] = {}
    n = 0
    for event in read_records(path, fmt):
        t = event["event_time"]
        key = (t - t % WINDOW_MS, event["region"], event["key"])
        state = groups.get(key)
        if state is None:
            state = groups[key] = ([], set())
        state[0].append(float(event["value"]))
        state[1].add(event["event_id"])
        n += 1
    write_result(out, [metrics(s, r, k, v, i) for (s, r, k), (v, i) in groups.items()])
    return n


def run_naive_beam(path: str, fmt: str, out: Path) -> int:
    """The textbook pipeline: json.loads -> timestamps -> FixedWindows -> CombinePerKey."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms.window import FixedWindows, TimestampedValue

    class Metrics(beam.CombineFn):
        def create_accumulator(self):
            return ([], set())

        def add_input(self, acc, event):
            acc[0].append(float(event["value"]))
            acc[1].add(event["event_id"])
            return acc

        def merge_accumulators(self, accs):
            values, ids = [], set()
            for v, i in accs:
                values.extend(v)
                ids |= i
            return values, ids

        def extract_output(self, acc):
            return acc

    class Format(beam.DoFn):
        def process(self, element, window=beam.DoFn.WindowParam):
            (region, key), (values, ids) = element
            yield json.dumps(metrics(window.start.micros // 1000, region, key, values, ids))

    out.mkdir(parents=True, exist_ok=True)
    with beam.Pipeline(options=PipelineOptions(["--runner", "DirectRunner"])) as p:
        if fmt == "avro":
            events = p | beam.io.ReadFromAvro(path)
        else:
            events = p | beam.io.ReadFromText(path) | "Parse" >> beam.Map(json.loads)
        (
            events
            | "Stamp" >> beam.Map(lambda e: TimestampedValue(e, e["event_time"] / 1000))
            | beam.WindowInto(FixedWindows(60))
            | "Key" >> beam.Map(lambda e: ((e["region"], e["key"]), e))
            | beam.CombinePerKey(Metrics())
            | beam.ParDo(Format())
            | beam.io.WriteToText(str(out / "result"), file_name_suffix=".jsonl")
        )
    return -1  # counted from the input by the harness


def run_pipeline(path: str, fmt: str, out: Path, extra: list[str]) -> int:
    """The pipeline exactly as the CLI builds it."""
    from pipelines.run import main

    source = Path(path).resolve().as_uri()  # file:// plus an absolute path (a relative one reads as a host)
    code = main(["--source", source, "--input_format", fmt, "--output", str(out), *extra])
    if code:
        raise SystemExit(code)
    return -1


def run_bytewax(path: str, fmt: str, out: Path) -> int:
    """bytewax in its best configuration here: batches pre-aggregated, then a keyed fold."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

    def batches():
        batch: list = []
        for event in read_records(path, fmt):
            batch.append(event)
            if len(batch) >= 50_000:
                yield batch
                batch = []
        if batch:
            yield batch

    def preaggregate(batch):
        groups: dict[str, tuple[list[float], set[str]]] = {}
        for e in batch:
            t = e["event_time"]
            key = f"{t - t % WINDOW_MS}|{e['region']}|{e['key']}"
            state = groups.get(key)
            if state is None:
                state = groups[key] = ([], set())
            state[0].append(float(e["value"]))
            state[1].add(e["event_id"])
        return list(groups.items())

    def merge(acc, part):
        acc[0].extend(part[0])
        acc[1].update(part[1])
        return acc

    results: list = []
    flow = Dataflow("bench")
    parts = op.flat_map("preaggregate", op.input("in", flow, TestingSource(batches())), preaggregate)
    folded = op.fold_final(
        "merge", op.key_on("noop", parts, lambda kv: kv[0]), lambda: ([], set()), lambda acc, kv: merge(acc, kv[1])
    )
    op.output("out", folded, TestingSink(results))
    run_main(flow)
    records = []
    for key, (values, ids) in results:
        start, region, k = key.split("|")
        records.append(metrics(int(start), region, k, values, ids))
    write_result(out, records)
    return -1


# Modules each variant needs, imported before the clock starts: start-up of the interpreter
# and libraries is the same for any job size and is not what is compared.
IMPORTS = {
    "naive-beam": ("apache_beam", "apache_beam.io", "apache_beam.runners.direct.direct_runner"),
    "pipeline": ("pipelines.run", "apache_beam.runners.direct.direct_runner"),
    "pipeline-2proc": ("pipelines.run", "apache_beam.runners.direct.direct_runner"),
    "bytewax": ("bytewax.operators", "bytewax.dataflow", "bytewax.testing"),
}


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> None:
    name, path, fmt, out = argv[:4]
    for module in IMPORTS.get(name, ()):
        importlib.import_module(module)
    if name != "limit" and name != "bytewax":
        # Beam imports IPython (when installed) the first time it labels a transform; a module
        # import like the others, so it is kept out of the clock as well.
        try:
            importlib.import_module("IPython")
        except ImportError:
            pass
    if fmt == "avro":
        import fastavro  # noqa: F401
    started = time.perf_counter()
    if name == "limit":
        n = run_limit(path, fmt, Path(out))
    elif name == "naive-beam":
        n = run_naive_beam(path, fmt, Path(out))
    elif name == "pipeline":
        n = run_pipeline(path, fmt, Path(out), argv[4:])  # extra CLI options, e.g. --progress off
    elif name == "pipeline-2proc":
        n = run_pipeline(path, fmt, Path(out), ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    elif name == "bytewax":
        n = run_bytewax(path, fmt, Path(out))
    else:
        raise SystemExit(f"unknown variant {name!r}")
    seconds = time.perf_counter() - started
    # Peak RSS: VmHWM is this process's own high-water mark since exec (ru_maxrss would carry
    # the launching process's size over the fork); plus, for multi-process runs, the largest
    # worker's ru_maxrss (an upper bound: it includes what the worker inherited at fork).
    peak_kib = _vm_hwm_kib() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"events": n, "seconds": seconds, "peak_rss_mib": peak_kib // 1024}))


if __name__ == "__main__":
    main(sys.argv[1:])
