"""Partition path encoding: Hive-compatible, injective, always under the output root, and the
guard that refuses any write landing elsewhere (transforms/partition_paths.py)."""

from __future__ import annotations

import os
import posixpath
import random
from pathlib import Path
from urllib.parse import unquote

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import partition_paths as pp
from transforms.file_chunks import chunks_of, partition_of
from transforms.partition_paths import (
    HIVE_DEFAULT_PARTITION,
    MAX_VALUE_BYTES,
    OutputPathError,
    OutputRoot,
    decode,
    encode,
    is_cut,
)
from transforms.sinks import AggregateFileWriter, guarded

DIMS = ("region", "key")
HIVE_ESCAPED = [*map(chr, range(0x20)), "\x7f", '"', "#", "%", "'", "*", "/", ":", "=", "?", "\\", "{", "[", "]", "^"]
MAX_CUT_BYTES = MAX_VALUE_BYTES + pp.CUT_SUFFIX_BYTES
PIECES = [
    "/", "\\", "..", ".", "%", "%2F", "%2f", "%25", "%2E", "%5F", "=", ":", "\x00", "\n", "\r", "\x1f", "\x7f",
    "\x85", "\x9f", "\xa0", "\ufffe", "\uffff", "\ud800", "\udfff", "\ud83d\ude00", HIVE_DEFAULT_PARTITION,
    "._COPYING_", " ", "~", "é", "€", "😀", "𝄞", "region=", "dt=", "a", "Z", "0", "<", ">", "|", "`", "}", "-",
]  # fmt: skip


def record(region: str, key: str, count: int) -> dict:
    return {
        "window_start": "2026-01-01T23:01:00Z", "window_end": "2026-01-01T23:02:00Z", "region": region, "key": key,
        "count": count, "sum": 1.5 * count, "min": 0.5, "max": 2.5, "mean": 1.5, "p50": 1.5, "p95": 2.5,
        "p99": 2.5, "distinct_ids": count, "pane": "ON_TIME", "pane_index": 0,
    }  # fmt: skip


def _random_char(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return chr(rng.randrange(0x20, 0x7F))
    if kind == 1:
        return chr(rng.choice([*range(0x20), 0x7F, *range(0x80, 0xA0)]))
    if kind == 2:
        return chr(rng.randrange(0x80, 0x10000))  # any BMP code point, lone surrogates included
    if kind == 3:
        return chr(rng.randrange(0x10000, 0x110000))
    return rng.choice(PIECES)


def bulk_values(count: int, seed: int = 20260101) -> list[str]:
    """`count` distinct hostile values: random Unicode, path pieces, reserved spellings, values
    around and far past the cut length, values sharing a long prefix, other values' encodings."""
    rng = random.Random(seed)
    values = {
        "", ".", "..", "...", HIVE_DEFAULT_PARTITION, "%5F_HIVE_DEFAULT_PARTITION__", "eu-west-1", "eu-west-1/",
        "a", "a.", "a ", "a%2E", "a%20", "x._COPYING_", "x%2E_COPYING_", "../" * 20 + "tmp/pwned",
        *("a" * n for n in range(195, 206)), *("é" * n for n in range(97, 104)), *("/" * n for n in range(64, 70)),
        *("😀" * n for n in range(48, 53)), *("\ud800" * n for n in range(20, 25)), "." * 300,
    }  # fmt: skip
    shared = "".join(_random_char(rng) for _ in range(400))
    pool = sorted(values)
    while len(values) < count:
        kind = rng.randrange(8)
        if kind == 0:
            value = "".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 9)))
        elif kind == 1:
            value = "".join(_random_char(rng) for _ in range(rng.randrange(0, 30)))
        elif kind == 2:
            value = "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(150, 600)))
        elif kind == 3:
            alphabet = ["é", "€", "😀", "\ud800", "\x85", "/"]
            value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40, 300)))
        elif kind == 4:  # differs from its siblings only past the cut point
            value = shared[: rng.randrange(200, 400)] + "".join(_random_char(rng) for _ in range(rng.randrange(1, 4)))
        elif kind == 5:  # another value's encoding, taken literally
            value = encode(rng.choice(pool))
        elif kind == 6:  # lengths right around the cut
            head = "b" * rng.randrange(180, 202)
            value = head + "".join(_random_char(rng) for _ in range(rng.randrange(0, 6)))
        else:
            value = rng.choice(PIECES) * rng.randrange(1, 120)
        if value not in values:
            values.add(value)
            pool.append(value)
    return sorted(values)


BULK = bulk_values(20_000)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _check_segment(value: str, encoded: str) -> None:
    size = _utf8_len(encoded)  # never raises: no lone surrogate survives encoding
    assert encoded not in ("", ".", "..") and "/" not in encoded and "\\" not in encoded
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in encoded)
    assert encoded[-1] not in ". " and not encoded.endswith("._COPYING_")
    assert encode(value) == pp._encode_slow(value)  # the fast path gives what the slow one gives
    if is_cut(encoded):
        # Cut encodings are longer than every uncut one: the two kinds cannot collide.
        assert MAX_VALUE_BYTES < size <= MAX_CUT_BYTES
        prefix = encoded[: -pp.CUT_SUFFIX_BYTES]
        assert encoded[-pp.CUT_SUFFIX_BYTES] == "-"
        # Cut between characters: the kept part decodes, and it is where the value starts.
        assert value.startswith(decode(prefix))
    else:
        assert size <= MAX_VALUE_BYTES
        assert decode(encoded) == value


def test_bulk_values_encode_injectively_under_the_root_and_decode_back(tmp_path: Path) -> None:
    assert len(BULK) == 20_000
    encoded = {value: encode(value) for value in BULK}
    # Injective: no two distinct values share a segment, so no two groups share a path.
    assert len(set(encoded.values())) == len(BULK)
    assert sum(map(is_cut, encoded.values())) > 1000  # the cut branch is well exercised
    for value, segment in encoded.items():
        _check_segment(value, segment)

    root = str(tmp_path / "out")
    real_root = os.path.realpath(root)
    file_guard, s3_guard = OutputRoot(root), OutputRoot("s3://bucket/agg")
    paths, keys = set(), set()
    for value in BULK:
        partition = partition_of(record(value, "k", 1), DIMS)
        assert all(_utf8_len(segment) < 255 for segment in partition.split("/"))
        path = f"{root}/{partition}/part-x.jsonl"
        assert os.path.normpath(path) == path  # no '.', '..' or empty segment to resolve
        assert os.path.realpath(path).startswith(real_root + os.sep)
        assert file_guard.check(path) == path
        key = f"s3://bucket/agg/{partition}/part-x.jsonl"
        assert posixpath.normpath(key[len("s3://") :]) == key[len("s3://") :]
        assert key.startswith("s3://bucket/agg/dt=") and s3_guard.check(key) == key
        paths.add(path)
        keys.add(key)
    assert len(paths) == len(keys) == len(BULK)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_every_row_written_reads_back_with_its_values(tmp_path: Path, fmt: str) -> None:
    # Lone surrogates cannot be serialized in UTF-8 files (nor decoded from JSON input), so
    # only their path encoding is tested above.
    values = [v for v in BULK if not any(0xD800 <= ord(c) < 0xE000 for c in v)][::4]
    rng = random.Random(7)
    records = [record(v, rng.choice(values), i + 1) for i, v in enumerate(values)]
    root = tmp_path / "out"
    writer = AggregateFileWriter(str(root), fmt, DIMS)
    writer.setup()
    written = writer.write_chunks(chunks_of(records, fmt, DIMS), shard="s000of001")
    assert len(written) == len(set(written)) == len(values)  # one file per region, none shared
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == len(values) and [p.name for p in tmp_path.iterdir()] == ["out"]
    assert all(path.startswith(f"{root}/dt=2026-01-01/hour=23/region=") for path in written)
    read = []
    for path in files:
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines()] if fmt == "jsonl" else (
            pq.read_table(path).to_pylist())  # fmt: skip
        assert len(rows) == 1
        segment = path.parent.name.removeprefix("region=")
        assert segment == encode(rows[0]["region"])
        if not is_cut(segment):
            assert decode(segment) == rows[0]["region"]
        read += rows
    key = lambda r: r["count"]  # noqa: E731 - unique per record
    assert sorted(read, key=key) == sorted(records, key=key)


# --- the encoding, value by value ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eu-west-1", "eu-west-1"),
        ("eu-west-1/", "eu-west-1%2F"),
        ("../../x", "..%2F..%2Fx"),
        ("a\x00b", "a%00b"),
        ("", HIVE_DEFAULT_PARTITION),
        (HIVE_DEFAULT_PARTITION, "%5F_HIVE_DEFAULT_PARTITION__"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("a.", "a%2E"),
        ("a b ", "a b%20"),
        ("x._COPYING_", "x%2E_COPYING_"),
        ("%2F", "%252F"),
        ("é€😀 ok", "é€😀 ok"),
        ("\x85", "%C2%85"),
        ("\ufffe", "%EF%BF%BE"),
        ("\ud800", "%ED%A0%80"),
        ("a<b>c|d`e}", "a%3Cb%3Ec%7Cd%60e%7D"),
    ],
)
def test_known_encodings(value: str, expected: str) -> None:
    assert encode(value) == expected
    assert decode(expected) == value


@pytest.mark.parametrize("char", HIVE_ESCAPED)
def test_hive_escapes_decode_the_same_in_hive_style_readers(char: str) -> None:
    encoded = encode(f"a{char}b")
    assert encoded == f"a%{ord(char):02X}b"
    # What Hive/Spark/Athena's unescapePathName and URL decoders give back.
    assert unquote(encoded) == f"a{char}b"


def test_cut_values_keep_a_prefix_and_differ_by_hash() -> None:
    base = "é" * 150
    one, two = encode(base + "1"), encode(base + "2")
    assert one != two and one[:-32] == two[:-32]
    assert is_cut(one) and _utf8_len(one) == MAX_VALUE_BYTES + pp.CUT_SUFFIX_BYTES
    # Never inside an escape: 66 x '%2F' is 198 bytes; a 67th would not fit whole.
    assert encode("/" * 100)[: -pp.CUT_SUFFIX_BYTES] == "%2F" * 66
    # Never inside one character's escapes: three %XX per lone surrogate.
    assert encode("\ud800" * 30)[: -pp.CUT_SUFFIX_BYTES] == "%ED%A0%80" * 22
    with pytest.raises(ValueError, match="is a cut encoding"):
        decode(one)


def test_decode_refuses_what_the_encoder_never_writes() -> None:
    with pytest.raises(ValueError, match="not followed by two hex digits"):
        decode("a%2")
    with pytest.raises(ValueError, match="not followed by two hex digits"):
        decode("a%zzb")
    assert decode("a%2fb") == "a/b"  # lowercase hex, as other writers may use, still decodes


LEGAL_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=120)
HOSTILE_TEXT = st.lists(st.sampled_from(PIECES) | st.characters(exclude_categories=()), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(LEGAL_TEXT | HOSTILE_TEXT)
def test_encode_round_trips_and_fast_path_matches(value: str) -> None:
    _check_segment(value, encode(value))


@settings(max_examples=400, deadline=None)
@given(HOSTILE_TEXT, HOSTILE_TEXT)
def test_distinct_values_never_share_a_segment(first: str, second: str) -> None:
    assert (encode(first) == encode(second)) == (first == second)


# --- the under-root guard -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/out/../etc/x",
        "/out/a/./b",
        "/out/a//b",
        "/out",
        "/out/",
        "/outside/x",
        "/other/x",
        "/out/a\x00b/x",
        "/out/a\\b/x",
    ],
)
def test_guard_refuses_paths_leaving_the_root(tmp_path: Path, path: str) -> None:
    root = tmp_path / "out"
    with pytest.raises(OutputPathError, match="refusing to write .*Nothing was written"):
        OutputRoot(str(root)).check(str(tmp_path) + path)


@pytest.mark.parametrize(
    "key",
    ["s3://b/agg/../x", "s3://b/agg/./x", "s3://b/agg//x", "s3://b/aggx/y", "s3://b/agg", "s3://c/agg/x", "s3://b/x"],
)
def test_guard_refuses_object_keys_leaving_the_prefix(key: str) -> None:
    with pytest.raises(OutputPathError, match="refusing to write"):
        OutputRoot("s3://b/agg").check(key)
    assert OutputRoot("s3://b/agg/").check("s3://b/agg/dt=x/part.jsonl") == "s3://b/agg/dt=x/part.jsonl"
    assert OutputRoot("gs://b").check("gs://b/dt=x/part.jsonl") == "gs://b/dt=x/part.jsonl"


def test_guard_follows_symlinks_inside_the_output(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "dt=2026-01-01").symlink_to(elsewhere, target_is_directory=True)
    guard = OutputRoot(str(root))
    with pytest.raises(OutputPathError, match="outside the real output root"):
        guard.check(f"{root}/dt=2026-01-01/hour=23/part-x.jsonl")
    assert issubclass(OutputPathError, ValueError)
    # Through the writer: the symlinked partition is refused and nothing lands outside.
    writer = AggregateFileWriter(str(root), "jsonl", DIMS)
    writer.setup()
    with pytest.raises(OutputPathError, match="outside the real output root"):
        writer.write_chunks(chunks_of([record("eu", "k", 1)], "jsonl", DIMS), shard="s000of001")
    assert list(elsewhere.rglob("*")) == []
    # A symlink to a directory inside the root, and a root that is itself a symlink, are fine.
    (root / "dt=2026-01-01").unlink()
    (root / "inner").mkdir()
    (root / "dt=2026-01-01").symlink_to(root / "inner", target_is_directory=True)
    assert guard.check(f"{root}/dt=2026-01-01/x.jsonl")
    (tmp_path / "link").symlink_to(root, target_is_directory=True)
    assert OutputRoot(str(tmp_path / "link")).check(f"{tmp_path}/link/dt=2026-01-01/x.jsonl")


def test_guarded_writer_checks_before_writing(tmp_path: Path) -> None:
    calls: list[str] = []
    write = guarded(str(tmp_path / "out"), lambda path, data, mime: calls.append(path))
    write(f"{tmp_path}/out/dt=x/part.jsonl", b"{}", "application/x-ndjson")
    with pytest.raises(OutputPathError):
        write(f"{tmp_path}/out/../pwned/part.jsonl", b"{}", "application/x-ndjson")
    assert calls == [f"{tmp_path}/out/dt=x/part.jsonl"]
