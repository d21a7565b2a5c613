"""The Kinesis API as the reader and the producer use it: the client, error classes and codes,
and the shard listing.

boto3 comes with `pip install '.[aws]'`; it is imported only when a client is made.
"""

from __future__ import annotations

from typing import Any

GET_RECORDS_LIMIT = 10_000  # Kinesis' cap per GetRecords call
THROTTLING_ERRORS = frozenset(
    {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}
)
# Server-side failures worth waiting out (an endpoint restarting, a 5xx), as opposed to errors
# in the request; connection errors are recognised by type in `is_unavailable`.
UNAVAILABLE_ERRORS = frozenset({"InternalFailure", "InternalServerError", "ServiceUnavailable"})
UNAVAILABLE_LIMIT_S = 300.0  # give up, with a clear error, after this long without an answer


class KinesisError(RuntimeError):
    """A Kinesis failure the reader cannot work around; the message says what to check."""


class StreamNotFound(KinesisError):
    """The stream does not exist (never created, deleted, or another region/account)."""


def error_code(err: Exception) -> str | None:
    """The service's error code of a botocore ClientError (None for other errors)."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def is_unavailable(err: Exception) -> bool:
    """True for a refused/dropped/timed-out connection or a 5xx answer: retry later."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ModuleNotFoundError:
        return False
    if isinstance(err, (BotoConnectionError, HTTPClientError)):
        return True
    response = getattr(err, "response", None)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if isinstance(response, dict) else 0
    return error_code(err) in UNAVAILABLE_ERRORS or status >= 500


def make_client(region: str | None, endpoint_url: str | None, *, sdk_retries: int = 1) -> Any:
    """A Kinesis client. SDK retries are off by default (1 attempt) so that throttling reaches
    the reader's own per-shard backoff, which defers only the throttled shard."""
    try:
        import boto3
        from botocore.config import Config
    except ModuleNotFoundError:
        raise KinesisError("The kinesis:// source needs boto3; install it with: pip install '.[aws]'") from None
    config = Config(
        retries={"total_max_attempts": sdk_retries, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )
    return boto3.client("kinesis", region_name=region, endpoint_url=endpoint_url, config=config)


def list_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of the stream (open and closed, within retention), following NextToken."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        try:
            response = client.list_shards(**kwargs)
        except Exception as err:  # noqa: BLE001 - botocore ClientError; re-raised below
            if error_code(err) == "ResourceNotFoundException":
                raise StreamNotFound(
                    f"Kinesis stream {stream!r} does not exist (deleted, or another region/account/endpoint)."
                ) from err
            raise
        shards.extend(response.get("Shards", []))
        token = response.get("NextToken")
        if not token:
            return shards
        kwargs = {"NextToken": token}
