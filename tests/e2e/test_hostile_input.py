"""Hostile records through the CLI: every valid record aggregates exactly under its own values,
every invalid one is dead-lettered with its payload, nothing is written outside the output and
dead-letter roots, and no record stops the run.

Each case runs on both decode paths: a file of fewer than 512 lines is decoded row by row, one
of more goes through the columnar fast path when clean (the hostile-but-valid dimension values)
and falls back to the row path when not (the broken records). And on two sinks: the local
filesystem and S3 (moto).
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

import orjson
import pytest

from tests.reliability.helpers import BASE_MS, dead_payload, run_cli

# Valid dimension values a producer may send: each is legal data and must come back unchanged.
HOSTILE_REGIONS = [
    "../../../../../../../../../../tmp/pwned-{tag}",
    "eu-west-1/",
    "/absolute/{tag}",
    "a/../../b",
    "..",
    ".",
    "",
    "x" * 300,
    "é" * 200,
    "nul\x00byte",
    "ctl\x01\x1f\x7f",
    "back\\slash",
    "k=v%2F:*?\"<>|#",
    "__HIVE_DEFAULT_PARTITION__",
    "dt=2026-01-01",
    "🙂 emoji",
]


def _event(i: int, region: str, key: str = "k", value: float = 1.0, ms: int = 0) -> dict:
    return {"event_id": f"e{i}", "event_time": BASE_MS + ms, "region": region, "key": key, "value": value}


def _broken_lines() -> list[bytes]:
    """Records the row path dead-letters; the columnar path must do the same."""
    good = orjson.dumps(_event(9_999, "eu-west-1"))
    deep = b"[" * 1100 + b"]" * 1100
    return [
        b"null",  # first line of its batch: once a crash of the Arrow reader
        good + good,  # two objects on one line
        b"   ",  # whitespace only
        good[:-1] + b', "extra": NaN}',
        good[:-1] + b', "extra": "\xff\xfe"}',  # invalid UTF-8 in an ignored field
        good[:-1] + b', "extra": ' + deep + b"}",  # nesting deeper than 1024
        b"\xef\xbb\xbf" + good,  # UTF-8 byte order mark
        orjson.dumps(_event(9_998, "REPLACE")).replace(b'"REPLACE"', b'"bad\xffutf8"'),  # in a dimension
        b'{"event_id": "s1", "event_time": 1767225600, "region": "eu", "key": "k", "value": 1}',  # seconds
    ]


def _files(tmp_path: Path, big: bool, tag: str) -> tuple[Path, list[dict], list[bytes]]:
    """A clean file of hostile-but-valid events and a file of broken records among good ones."""
    regions = [r.format(tag=tag) for r in HOSTILE_REGIONS]
    crowd = 599 if big else 99  # events of eu-west-1, beside 1 of "eu-west-1/": same window and key
    clean = [_event(i, "eu-west-1", ms=i) for i in range(crowd)]
    clean += [_event(1000 + i, region, value=float(i), ms=i) for i, region in enumerate(regions)]
    # Events without an id, or with a null one, count but add nothing to distinct_ids.
    no_id = _event(1100, "no-id")
    del no_id["event_id"]
    clean += [no_id, {**_event(1101, "no-id"), "event_id": None}]
    filler = 600 if big else 50  # the broken file's good events
    mixed = [_event(2000 + i, "us-east-1", key=f"k{i % 3}", ms=i * 10) for i in range(filler)]
    broken = _broken_lines()
    lines = [orjson.dumps(e) for e in mixed]
    for index, line in enumerate(broken):
        lines.insert(0 if index == 0 else index * (len(lines) // len(broken)), line)
    src = tmp_path / "src"
    src.mkdir()
    (src / "clean.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in clean))
    (src / "mixed.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return src, clean + mixed, broken


def _expected(events: list[dict]) -> dict[tuple, tuple[int, float]]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for e in events:
        start = e["event_time"] - e["event_time"] % 60_000
        iso = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        groups[(iso, e["region"], e["key"])].append(e["value"])
    return {k: (len(v), math.fsum(v)) for k, v in groups.items()}


def _check(rows: list[dict], dead: list[dict], events: list[dict], broken: list[bytes]) -> None:
    got = {(r["window_start"], r["region"], r["key"]): (r["count"], r["sum"]) for r in rows}
    assert len(got) == len(rows), "two rows for one group"
    assert got == _expected(events)
    assert [r["distinct_ids"] for r in rows if r["region"] == "no-id"] == [0]
    assert sorted(dead_payload(d) for d in dead) == sorted(broken)
    seconds = next(d for d in dead if b'"s1"' in dead_payload(d))
    assert "--event_time_unit s" in seconds["error"], seconds["error"]


def _run(env: dict, src: Path, output: str, dead_letter: str) -> None:
    done = run_cli(env, "--source", f"file://{src}/*.jsonl", "--output", output, "--dead_letter", dead_letter)
    assert "dead letters                 9" in done.stdout, done.stdout


def _read_lines(read: Callable[[], dict[str, bytes]]) -> list[dict]:
    return [json.loads(line) for body in read().values() for line in body.splitlines()]


@pytest.mark.parametrize("big", [False, True], ids=["row-path", "columnar-path"])
def test_hostile_records_on_a_local_sink(tmp_path: Path, big: bool) -> None:
    tag = uuid.uuid4().hex[:8]
    src, events, broken = _files(tmp_path, big, tag)
    out, dlq = tmp_path / "out", tmp_path / "dlq"
    _run({}, src, f"file://{out}", f"file://{dlq}")
    assert not Path(f"/tmp/pwned-{tag}").exists() and not Path(f"/absolute/{tag}").exists()
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {p for p in src.rglob("*")}
    outside = [p for p in written if out not in p.parents and dlq not in p.parents]
    assert not outside, outside
    rows = [json.loads(line) for p in out.rglob("*.jsonl") for line in p.read_text().splitlines()]
    dead = [json.loads(line) for p in dlq.rglob("*.jsonl") for line in p.read_text().splitlines()]
    _check(rows, dead, events, broken)


@pytest.mark.integration
@pytest.mark.parametrize("big", [False, True], ids=["row-path", "columnar-path"])
def test_hostile_records_on_s3(moto_service, tmp_path: Path, big: bool) -> None:
    s3 = moto_service.client("s3")
    bucket = f"hostile-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    src, events, broken = _files(tmp_path, big, "s3")
    _run(moto_service.env(), src, f"s3://{bucket}/agg", f"s3://{bucket}/dlq")

    def objects(prefix: str = "") -> dict[str, bytes]:
        found = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found

    keys = set(objects())
    outside = [k for k in keys if not k.startswith(("agg/", "dlq/"))]
    assert not outside, outside
    assert all("/../" not in k and "/./" not in k and "//" not in k for k in keys), sorted(keys)
    _check(_read_lines(lambda: objects("agg/")), _read_lines(lambda: objects("dlq/")), events, broken)
