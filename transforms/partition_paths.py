"""Dimension values -> safe, injective Hive partition path segments, and the output-root guard.

Any valid JSON string is a legal dimension value, so a value never reaches a path raw:

- Escaping is Hive's and Spark's (`FileUtils.escapePathName`): `%XX`, uppercase hex, for the
  control characters 0x00-0x1F and 0x7F and for `"#%'*/:=?\\{[]^`, plus `<>|` (which Spark also
  escapes on Windows) and `` ` `` and `}` (S3's "characters to avoid"). Non-ASCII stays UTF-8,
  except the code points stores cannot hold in a name or list as XML (C1 controls 0x80-0x9F,
  U+FFFE, U+FFFF) and lone surrogates (a Python str can hold them, UTF-8 cannot): these become
  `%XX` escapes of their UTF-8 bytes (surrogatepass for surrogates), as in RFC 3986. An ASCII
  escape decodes identically in Hive, Spark, Athena, BigQuery and DuckDB; the rare non-ASCII
  escapes are read back as UTF-8 by `decode` and by URL-decoding readers such as DuckDB.
- Spellings with a meaning of their own are escaped so no value can take them: the empty value
  is Hive's `__HIVE_DEFAULT_PARTITION__` and that literal text becomes `%5F_HIVE_DEFAULT_PARTITION__`;
  values made only of dots become `%2E...`; a trailing `.` or space is escaped (Windows and
  Azure drop or refuse them, which would merge `a.` with `a`); a trailing `._COPYING_` has its
  dot escaped (Spark skips such directories as in-flight copies).
- An encoding longer than MAX_VALUE_BYTES (UTF-8 bytes) is cut at a character boundary (never
  inside an escape or a UTF-8 sequence), at most MAX_VALUE_BYTES bytes, and gets `-` and 32 hex
  digits of the SHA-256 of the full value. A cut encoding is always longer than MAX_VALUE_BYTES
  and an uncut one never is, so the two cannot collide; cut ones differ whenever the full
  values' hashes (128 bits) differ. Rows carry every value in full, so nothing is lost.

Since `decode(encode(v)) == v` for every uncut value, `encode` is injective, and since an
encoded value never contains `/`, distinct values give distinct paths.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import unquote_to_bytes

HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Encoded bytes of one partition value before it is cut; with `region=` and a cut suffix the
# segment stays at most 7 + 200 + 33 = 240 bytes, under the 255-byte name limit of file systems.
MAX_VALUE_BYTES = 200
HASH_HEX_DIGITS = 32
CUT_SUFFIX_BYTES = 1 + HASH_HEX_DIGITS
_SPARK_COPYING = "._COPYING_"

_ASCII_ESCAPED = "\"#%'*/:=?\\{[]^" + "<>|}`"
# Characters left as they are on the fast path: printable ASCII minus the escaped ones.
_PLAIN_ASCII = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in _ASCII_ESCAPED)
_PLAIN = re.compile(f"[{re.escape(_PLAIN_ASCII)}]{{1,{MAX_VALUE_BYTES}}}")


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def _escaped_code_points() -> list[int]:
    points = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0xFFFE, 0xFFFF, *range(0xD800, 0xE000)]
    return points + [ord(c) for c in _ASCII_ESCAPED]


_ESCAPES = {point: _escape(chr(point)) for point in _escaped_code_points()}
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _escape_all(value: str) -> str:
    """Per-character escaping plus the reserved-spelling rules, before any cut."""
    if not value:
        return HIVE_DEFAULT_PARTITION
    if value == HIVE_DEFAULT_PARTITION:
        return "%5F" + value[1:]
    if not value.strip("."):
        return "%2E" * len(value)
    text = value.translate(_ESCAPES)
    if text.endswith(_SPARK_COPYING):
        return text[: -len(_SPARK_COPYING)] + "%2E" + _SPARK_COPYING[1:]
    if text[-1] in ". ":
        return text[:-1] + _escape(text[-1])
    return text


def _char_bytes(char: str) -> int:
    point = ord(char)
    return 1 if point < 0x80 else 2 if point < 0x800 else 3 if point < 0x10000 else 4


def _cut(value: str, text: str) -> str:
    """The longest prefix of `text` within MAX_VALUE_BYTES that ends between two characters of
    `value` (inside no escape and no UTF-8 sequence), `-`, and a hash of the full value."""
    size = end = 0
    while end < len(text):
        if text[end] == "%":
            # One escaped character: its first byte's escape and those of its continuation
            # bytes (0x80-0xBF, whose escapes start with 8, 9, A or B).
            stop = end + 3
            while text.startswith("%", stop) and text[stop + 1] in "89AB":
                stop += 3
            piece = stop - end
        else:
            stop, piece = end + 1, _char_bytes(text[end])
        if size + piece > MAX_VALUE_BYTES:
            break
        size, end = size + piece, stop
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_HEX_DIGITS]
    return text[:end] + "-" + digest


def encode(value: str) -> str:
    """A dimension value as a partition value: escaped, never empty, never `.`/`..`, no `/`,
    at most MAX_VALUE_BYTES + CUT_SUFFIX_BYTES bytes of UTF-8. Injective over all strs."""
    if (
        _PLAIN.fullmatch(value)
        and value[-1] not in ". "
        and value != HIVE_DEFAULT_PARTITION
        and not value.endswith(_SPARK_COPYING)
    ):
        return value  # nothing to escape, not reserved, short enough: what _encode_slow gives
    return _encode_slow(value)


def _encode_slow(value: str) -> str:
    text = _escape_all(value)
    if len(text) <= MAX_VALUE_BYTES // 4 or _utf8_len(text) <= MAX_VALUE_BYTES:
        return text
    return _cut(value, text)


def is_cut(encoded: str) -> bool:
    """Whether `encoded` is a cut encoding (its full value is only in the rows)."""
    return _utf8_len(encoded) > MAX_VALUE_BYTES


def decode(encoded: str) -> str:
    """The value an uncut `encode` output stands for: `decode(encode(v)) == v`."""
    if is_cut(encoded):
        raise ValueError(
            f"partition value {encoded[:40]!r}... is a cut encoding ({_utf8_len(encoded)} bytes, over "
            f"{MAX_VALUE_BYTES}): it ends with a hash instead of the rest of the value; read the full "
            "value from the dimension column of the file's rows."
        )
    if encoded == HIVE_DEFAULT_PARTITION:
        return ""
    bad = _BAD_PERCENT.search(encoded)
    if bad:
        raise ValueError(
            f"partition value {encoded!r} has a '%' at offset {bad.start()} not followed by two hex digits; "
            "it was not written by this encoder (every literal '%' is written as %25)."
        )
    return unquote_to_bytes(encoded).decode("utf-8", "surrogatepass")


def partition_segment(name: str, value: str) -> str:
    """`name=encoded value`, one path segment."""
    return f"{name}={encode(value)}"


class OutputPathError(ValueError):
    """A write would land outside the output root (or on a name that is not a plain segment path)."""


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


class OutputRoot:
    """Checks that a path lies under the output root before anything is written to it.

    Object stores: the key must start with the root prefix and what follows must be non-empty
    segments other than `.` and `..`. Local files: the same, and the real path (symlinks and
    `..` resolved) must lie under the real root, so a symlink planted in the output directory
    cannot redirect a write."""

    def __init__(self, root: str) -> None:
        self._root = root.rstrip("/")
        self._local = "://" not in self._root or self._root.startswith("file://")

    def check(self, path: str) -> str:
        """Returns `path` when it is safe to write, else raises OutputPathError."""
        if not path.startswith(self._root + "/"):
            self._refuse(path, "it does not start with the output root")
        relative = path[len(self._root) + 1 :]
        for segment in relative.split("/"):
            if segment in ("", ".", ".."):
                self._refuse(path, f"it has an empty, '.' or '..' segment ({segment!r})")
        if "\x00" in path or "\\" in relative:
            self._refuse(path, "it contains a NUL byte or a backslash")
        if self._local:
            real_root = os.path.realpath(_local(self._root))
            real = os.path.realpath(_local(path))
            if os.path.commonpath([real_root, real]) != real_root or real == real_root:
                self._refuse(path, f"it resolves to {real!r}, outside the real output root {real_root!r}")
        return path

    def _refuse(self, path: str, why: str) -> None:
        raise OutputPathError(
            f"refusing to write {path!r} under the output root {self._root!r}: {why}. Nothing was written. "
            "Partition values are encoded so this cannot come from input data; check the output directory "
            "for a symbolic link pointing elsewhere (remove it) or choose another --output."
        )
