"""Parsing of --source and --output URIs into small typed specs.

Parsing is separate from reading so that the CLI can reject a bad URI in one sentence
before any pipeline is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

SOURCE_SCHEMES = ("synthetic", "file", "kinesis", "eventhubs", "pubsub")
SINK_SCHEMES = ("file", "s3", "gs", "azfs")


class UriError(ValueError):
    """A source or sink URI that cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class SourceSpec:
    """A parsed --source URI: `scheme`, `location` (everything before '?') and query params."""

    scheme: str
    location: str
    params: dict[str, str] = field(default_factory=dict)
    uri: str = ""

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def int_param(self, name: str, default: int) -> int:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise UriError(
                f"{self.uri!r}: parameter {name}={raw!r} must be a whole number, e.g. {name}={default}."
            ) from None

    def float_param(self, name: str, default: float) -> float:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise UriError(f"{self.uri!r}: parameter {name}={raw!r} must be a number, e.g. {name}={default}.") from None


@dataclass(frozen=True)
class SinkSpec:
    """A parsed --output / --dead_letter URI; `path` is what Beam's FileSystems understands."""

    scheme: str
    path: str

    def join(self, *parts: str) -> str:
        return "/".join([self.path.rstrip("/"), *parts])


def _split(uri: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(uri)
    location = parts.netloc + parts.path
    return parts.scheme.lower(), location, dict(parse_qsl(parts.query, keep_blank_values=True))


def parse_source(uri: str) -> SourceSpec:
    """Parse a --source URI; bare paths are local files."""
    if not uri or not uri.strip():
        raise UriError("--source is empty; give a URI such as synthetic:// or file:///data/events.jsonl.")
    if "://" not in uri:
        return SourceSpec("file", os.path.abspath(uri), {}, uri)
    scheme, location, params = _split(uri)
    if scheme not in SOURCE_SCHEMES:
        raise UriError(
            f"Unknown source scheme {scheme!r} in {uri!r}; use one of "
            + ", ".join(f"{s}://" for s in SOURCE_SCHEMES)
            + "."
        )
    if scheme == "file" and not location:
        raise UriError(f"{uri!r} names no file; write file:///absolute/path/or/glob.")
    return SourceSpec(scheme, location, params, uri)


def parse_sink(uri: str, option: str = "--output") -> SinkSpec:
    """Parse an --output or --dead_letter URI; bare paths are local directories."""
    if not uri or not uri.strip():
        raise UriError(f"{option} is empty; give a directory or a URI such as file:///tmp/out or s3://bucket/prefix.")
    if "://" not in uri:
        return SinkSpec("file", os.path.abspath(uri))
    scheme, location, _ = _split(uri)
    if scheme not in SINK_SCHEMES:
        raise UriError(
            f"Unknown {option} scheme {scheme!r} in {uri!r}; use one of "
            + ", ".join(f"{s}://" for s in SINK_SCHEMES)
            + "."
        )
    if not location.strip("/"):
        raise UriError(f"{option} {uri!r} names no bucket or directory.")
    if scheme == "file":
        return SinkSpec("file", "/" + location.lstrip("/"))
    return SinkSpec(scheme, f"{scheme}://{location}")
