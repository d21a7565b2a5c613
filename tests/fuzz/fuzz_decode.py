"""Fuzz target for the decoders: `python -m tests.fuzz.fuzz_decode [corpus_dir] [libFuzzer flags]`.

Each input becomes a few JSON lines placed among clean events in a batch large enough for the
columnar fast path, plus the same lines as a small batch for the row path alone. Invariants:
no exception escapes Decoder.decode or ColumnarDecoder.decode (nor a crash in pyarrow), and
whenever the fast path takes a batch it yields exactly the row path's events (decode_oracle).
Runs under atheris (coverage-guided) when it is installed; `one_input` needs nothing but bytes.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import orjson

UNITS = ("ms", "s", "us", "ns")
T0 = 1_767_225_600_000
MAX_LINES = 8


def clean_lines(n: int) -> list[bytes]:
    rng = random.Random(7)
    return [
        orjson.dumps({"event_id": f"{rng.getrandbits(64):016x}", "event_time": T0 + i * 13,
                      "region": rng.choice(["eu", "us"]), "key": f"k{i % 9}", "value": i / 4})
        for i in range(n)
    ]


def seeds() -> list[bytes]:
    """Starting inputs: first byte picks the unit and where the lines go, the rest are lines."""
    good = orjson.dumps({"event_id": "x", "event_time": T0, "region": "eu", "key": "k", "value": 1.5})
    body = good[1:-1]
    lines = [
        good, good + good, b"   ", b"null", b"\xef\xbb\xbf" + good, b'{"p":NaN,' + body + b"}",
        b'{"p":"\xff",' + body + b"}", b'{"p":' + b"[" * 1030 + b"]" * 1030 + b"," + body + b"}",
        b'{"p":1.8e308,' + body + b"}", b'{"p":"\\ud800",' + body + b"}", good.replace(b"1.5", b"-0"),
        good.replace(b'"eu"', b"7"), good.replace(b"%d" % T0, b"%d" % (T0 // 1000)),
        good.replace(b"%d" % T0, b'"2026-01-01T00:00:00Z"'), b'{"event_time":1,' + body + b"}",
    ]
    return [bytes([i % 256]) + line for i, line in enumerate(lines)] + [b"\x03" + b"\n".join(lines[:4])]


def one_input(data: bytes) -> None:
    from tests.unit.decode_oracle import check_batch
    from transforms.columnar import MIN_BATCH
    from transforms.decode import EventSchema

    if not data:
        return
    head, lines = data[0], data[1:].split(b"\n")[:MAX_LINES]
    schema = EventSchema(time_unit=UNITS[head % 4])
    records = list(_CLEAN[: MIN_BATCH + (head >> 6)])
    spots = (0, len(records) // 2, len(records))
    for index, line in enumerate(lines):
        records.insert(spots[(head >> 2) % 3] + index, line)
    check_batch(records, schema)
    check_batch(lines, schema)


_CLEAN = clean_lines(600)


def main(argv: list[str]) -> None:
    import atheris

    corpus = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    if corpus is not None:
        folder = Path(corpus)
        folder.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(seeds()):
            (folder / f"seed{index}").write_bytes(seed)
    with atheris.instrument_imports(include=["transforms", "io_connectors", "tests.unit.decode_oracle"]):
        import tests.unit.decode_oracle  # noqa: F401
        import transforms.columnar  # noqa: F401
        import transforms.decode  # noqa: F401
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
