"""Parsing of --source and --output URIs into small typed specs.

Parsing is separate from reading so that the CLI can reject a bad URI in one sentence
before any pipeline is built.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

SOURCE_SCHEMES = ("synthetic", "file", "kinesis", "eventhubs", "pubsub")
SINK_SCHEMES = ("file", "s3", "gs", "azfs")
# The query parameters each source scheme reads; any other is refused by name, so that a typo
# (or a credential pasted into the URI) never goes unnoticed. file:// takes none: there '?' is
# the glob wildcard and belongs to the path.
SOURCE_PARAMS: dict[str, tuple[str, ...]] = {
    "synthetic": ("events", "keys", "seed", "rate", "span", "regions", "malformed", "late", "batch"),
    "file": (),
    "kinesis": ("region",),
    "eventhubs": ("consumer_group",),
    "pubsub": (),
}
# Where each source takes its credentials from, for the refusal of credentials in a URI.
_AWS_CHAIN = "the AWS credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE and ~/.aws/credentials)"
CREDENTIALS_FROM = {
    "kinesis": _AWS_CHAIN,
    "eventhubs": "the environment variable named by --eventhubs_connection_string_env (EVENTHUBS_CONNECTION_STRING)",
    "pubsub": "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)",
    "s3": _AWS_CHAIN,
    "gs": "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)",
    "azfs": "the AZURE_STORAGE_CONNECTION_STRING environment variable or Azure AD credentials",
}
REDACTED = "***"
# Parameter names (lower case, without '_' and '-') whose values are secrets.
_SECRET_NAMES = frozenset({"sig", "key", "pwd", "pass", "sas", "auth", "code", "apikey", "accesskey", "secretkey"})
_SECRET_PARTS = (
    "password", "passwd", "secret", "token", "signature", "sharedaccesskey", "accountkey", "accesskey",
    "connectionstring", "privatekey", "credential",
)
# key=value pairs of connection strings and SAS tokens, wherever they appear in a text.
_SECRET_PAIR = re.compile(
    r"(?i)\b(\w*?(?:SharedAccessKey|SharedAccessSignature|AccountKey|AccessKey|sig|password|passwd|pwd|secret|token))"
    r"=([^;&\s'\"]*)"
)
# scheme://user:password@ or scheme://token@ in free text.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s'\"?#]*)@")


class UriError(ValueError):
    """A source or sink URI that cannot be used; the message says what to write instead."""


def is_secret_name(name: str) -> bool:
    """Whether a parameter or option name (password, sig, SharedAccessKey, ...) holds a secret."""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    return flat in _SECRET_NAMES or any(part in flat for part in _SECRET_PARTS)


def _redact_userinfo(match: re.Match) -> str:
    user, colon, _ = match.group(2).partition(":")
    # user:password keeps the user; a lone userinfo is usually a token, so all of it goes.
    return f"{match.group(1)}{user}:{REDACTED}@" if colon else f"{match.group(1)}{REDACTED}@"


def redact_text(text: str) -> str:
    """`text` with URI passwords and key=value secrets (SharedAccessKey=, sig=, ...) replaced by ***."""
    text = _USERINFO.sub(_redact_userinfo, text)
    return _SECRET_PAIR.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if eq and is_secret_name(unquote(name)) else pair)
    return "&".join(pairs)


def redact_uri(uri: str) -> str:
    """`uri` fit to print: the userinfo password (or a lone token), secret-named query parameters
    (password, sig, token, SharedAccessKey, ...) and connection-string keys become ***."""
    if not uri:
        return uri
    scheme, sep, rest = uri.partition("://")
    if sep and "?" in rest and scheme.lower() != "file":
        head, _, query = rest.partition("?")
        query, hash_, fragment = query.partition("#")
        uri = f"{scheme}://{head}?{_redact_query(query)}{hash_}{fragment}"
    return redact_text(uri)


@dataclass(frozen=True)
class SourceSpec:
    """A parsed --source URI: `scheme`, `location` (everything before '?'; for file:// the whole
    path, where '?' is a glob wildcard) and query params."""

    scheme: str
    location: str
    params: dict[str, str] = field(default_factory=dict)
    uri: str = ""

    @property
    def shown(self) -> str:
        """The URI as printed in messages: secrets replaced by ***."""
        return redact_uri(self.uri or f"{self.scheme}://{self.location}")

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
                f"{self.shown!r}: parameter {name}={raw!r} must be a whole number, e.g. {name}={default}."
            ) from None

    def float_param(self, name: str, default: float) -> float:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise UriError(
                f"{self.shown!r}: parameter {name}={raw!r} must be a number, e.g. {name}={default}."
            ) from None


@dataclass(frozen=True)
class SinkSpec:
    """A parsed --output / --dead_letter URI; `path` is what Beam's FileSystems understands."""

    scheme: str
    path: str

    def join(self, *parts: str) -> str:
        return "/".join([self.path.rstrip("/"), *parts])


def _split(uri: str, option: str) -> tuple[str, str, dict[str, str]]:
    """(scheme, location, query params) of a URI; refuses credentials in it and ambiguous file:// hosts."""
    try:
        parts = urlsplit(uri)
        username = parts.username
    except ValueError as err:
        raise UriError(f"{option} {redact_uri(uri)!r} is not a valid URI ({err}).") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        # Everything after file:// is the path: '?' and '#' are legal in local paths ('?' is a glob
        # wildcard), and a local path has no host.
        netloc, _, path = uri[len("file://"):].partition("/")
        if netloc not in ("", "localhost"):
            raise UriError(
                f"{option} {redact_uri(uri)!r} names the host {netloc!r} (file:// is followed by a host); "
                f"write file:///absolute/path with three slashes, or the relative path {netloc + '/' + path!r} "
                "without file://."
            )
        return scheme, "/" + path, {}
    if "@" in parts.netloc or username is not None:
        raise UriError(
            f"{option} {redact_uri(uri)!r} carries credentials (user:password@), which do not belong on "
            f"the command line; remove them: {scheme}:// takes its credentials from "
            f"{CREDENTIALS_FROM.get(scheme, 'its usual environment variables or credential files')}."
        )
    location = parts.netloc + parts.path
    return scheme, location, dict(parse_qsl(parts.query, keep_blank_values=True))


def _check_params(uri: str, option: str, params: dict[str, str], known: tuple[str, ...]) -> None:
    unknown = [name for name in params if name not in known]
    if not unknown:
        return
    names = ", ".join(repr(name) for name in unknown)
    if known:
        accepted = f"it accepts only {', '.join(f'{k}=' for k in known)}"
    elif option == "--source":
        accepted = "it takes none"
    else:
        accepted = "sink URIs take none (credentials come from the environment, see docs/storage.md)"
    them = "them" if len(unknown) > 1 else "it"
    raise UriError(
        f"{option} {redact_uri(uri)!r}: unknown parameter{'s' if len(unknown) > 1 else ''} {names}; "
        f"{accepted}, so remove or correct {them}."
    )


def parse_source(uri: str) -> SourceSpec:
    """Parse a --source URI; bare paths are local files (relative ones from the working directory)."""
    if not uri or not uri.strip():
        raise UriError("--source is empty; give a URI such as synthetic:// or file:///data/events.jsonl.")
    if "://" not in uri:
        return SourceSpec("file", os.path.abspath(uri), {}, uri)
    scheme = uri.partition("://")[0].lower()
    if scheme not in SOURCE_SCHEMES:
        raise UriError(
            f"Unknown source scheme {scheme!r} in {redact_uri(uri)!r}; use one of "
            + ", ".join(f"{s}://" for s in SOURCE_SCHEMES)
            + "."
        )
    scheme, location, params = _split(uri, "--source")
    if scheme == "file" and not location.strip("/"):
        raise UriError(f"--source {redact_uri(uri)!r} names no file; write file:///absolute/path/or/glob.")
    _check_params(uri, "--source", params, SOURCE_PARAMS[scheme])
    return SourceSpec(scheme, location, params, uri)


def parse_sink(uri: str, option: str = "--output") -> SinkSpec:
    """Parse an --output or --dead_letter URI; bare paths are local directories (relative ones from
    the working directory)."""
    if not uri or not uri.strip():
        raise UriError(f"{option} is empty; give a directory or a URI such as file:///tmp/out or s3://bucket/prefix.")
    if "://" not in uri:
        return SinkSpec("file", os.path.abspath(uri))
    scheme = uri.partition("://")[0].lower()
    if scheme not in SINK_SCHEMES:
        raise UriError(
            f"Unknown {option} scheme {scheme!r} in {redact_uri(uri)!r}; use one of "
            + ", ".join(f"{s}://" for s in SINK_SCHEMES)
            + "."
        )
    scheme, location, params = _split(uri, option)
    if not location.strip("/"):
        raise UriError(f"{option} {redact_uri(uri)!r} names no bucket or directory.")
    _check_params(uri, option, params, ())
    if scheme == "file":
        return SinkSpec("file", "/" + location.lstrip("/"))
    return SinkSpec(scheme, f"{scheme}://{location}")
