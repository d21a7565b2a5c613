"""Puts records into a Kinesis stream, for tests and benchmarks: `KinesisPutter` batches
PutRecords calls, and a command line loads a stream from a file or with synthetic events.

    python -m io_connectors.kinesis_producer --stream S [--endpoint-url URL] (--from-file F | --synthetic N)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import orjson

from io_connectors.kinesis_client import THROTTLING_ERRORS, KinesisError, StreamNotFound, error_code, make_client
from io_connectors.kinesis_core import Backoff

PUT_RECORDS_MAX_COUNT = 500  # Kinesis' cap per PutRecords call
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key of one record


def partition_key_of(record: Any, field: str | None, fallback: str) -> str:
    """The partition key: `field` of a dict (or of a JSON object's bytes), else `fallback`."""
    if field:
        value = None
        if isinstance(record, dict):
            value = record.get(field)
        else:
            try:
                parsed = orjson.loads(record)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                value = parsed.get(field)
        if value is not None and not isinstance(value, (dict, list)) and str(value):
            return str(value)[:256]
    return fallback


class KinesisPutter:
    """Buffers records and sends them with PutRecords (<= 500 records, <= 5 MiB a call),
    re-sending only the entries that failed, with backoff, up to `max_attempts` times."""

    def __init__(
        self,
        client: Any,
        stream: str,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._stream = stream
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff(base_s=0.1, cap_s=5.0)
        self._sleep = sleep
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self.sent = 0
        self.retried = 0
        self.calls = 0

    def add(self, data: bytes, partition_key: str) -> None:
        size = len(data) + len(partition_key.encode("utf-8"))
        if size > MAX_RECORD_BYTES:
            raise ValueError(f"a record of {size} bytes exceeds Kinesis' 1 MiB limit (data + partition key)")
        if len(self._pending) >= PUT_RECORDS_MAX_COUNT or self._pending_bytes + size > PUT_RECORDS_MAX_BYTES:
            self.flush()
        self._pending.append({"Data": data, "PartitionKey": partition_key})
        self._pending_bytes += size

    def flush(self) -> None:
        entries, self._pending, self._pending_bytes = self._pending, [], 0
        attempt = 0
        while entries:
            attempt += 1
            self.calls += 1
            try:
                response = self._client.put_records(StreamName=self._stream, Records=entries)
            except Exception as err:  # noqa: BLE001 - botocore ClientError; classified below
                if error_code(err) not in THROTTLING_ERRORS or attempt >= self._max_attempts:
                    if error_code(err) == "ResourceNotFoundException":
                        raise StreamNotFound(f"Kinesis stream {self._stream!r} does not exist.") from err
                    raise
                self._sleep(self._backoff.failure("put"))
                continue
            results = response.get("Records", [])
            failed = [entry for entry, result in zip(entries, results, strict=True) if result.get("ErrorCode")]
            self.sent += len(entries) - len(failed)
            if not failed:
                self._backoff.success("put")
                return
            if attempt >= self._max_attempts:
                codes = sorted({r.get("ErrorCode") for r in results if r.get("ErrorCode")})
                raise KinesisError(
                    f"PutRecords to {self._stream!r}: {len(failed)} records still failing after "
                    f"{attempt} attempts ({', '.join(codes)})."
                )
            self.retried += len(failed)
            entries = failed
            self._sleep(self._backoff.failure("put"))


def kpl_aggregate(user: Sequence[tuple]) -> tuple[str, str | None, bytes]:
    """One KPL aggregate of (partition key, data[, explicit hash key]) user records, made with
    aws-kinesis-agg's aggregator: the (partition key, explicit hash key, data) to put."""
    saved = list(sys.path)
    try:
        from aws_kinesis_agg.aggregator import AggRecord
    except ImportError as err:
        raise ImportError("making KPL aggregates needs aws-kinesis-agg: pip install '.[test]'") from err
    finally:
        sys.path[:] = saved  # the package puts its own directory first on sys.path to import its schema
    record = AggRecord()
    for entry in user:
        if not record.add_user_record(*entry):
            raise ValueError(f"{len(user)} user records do not fit in one aggregate (1 MiB)")
    partition_key, hash_key, data = record.get_contents()
    return partition_key, hash_key or None, data


def _produce_records(args: argparse.Namespace) -> Iterator[bytes]:
    if args.from_file:
        with open(args.from_file, "rb") as handle:
            for line in handle:
                line = line.rstrip(b"\r\n")
                if line:
                    yield line
        return
    from io_connectors.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(events=args.synthetic, keys=args.keys, seed=args.seed, malformed=args.malformed)
    yield from generate(config, 0, args.synthetic)


def _produce(args: argparse.Namespace) -> int:
    client = make_client(args.region, args.endpoint_url, sdk_retries=5)
    if args.create:
        try:
            client.create_stream(StreamName=args.stream, ShardCount=args.shards)
        except Exception as err:  # noqa: BLE001 - botocore ClientError
            if error_code(err) != "ResourceInUseException":
                raise
        client.get_waiter("stream_exists").wait(StreamName=args.stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    putter = KinesisPutter(client, args.stream)
    started = time.monotonic()
    count = 0
    for index, data in enumerate(_produce_records(args)):
        putter.add(data, partition_key_of(data, args.partition_key_field, str(index)))
        count += 1
    putter.flush()
    seconds = time.monotonic() - started
    summary = {"stream": args.stream, "records": count, "sent": putter.sent, "retried": putter.retried,
               "put_calls": putter.calls, "seconds": round(seconds, 3),
               "records_per_s": round(count / seconds) if seconds > 0 else None}
    print(orjson.dumps(summary).decode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m io_connectors.kinesis_producer",
        description="Put NDJSON lines from a file, or seeded synthetic events, into a Kinesis stream "
        "(PutRecords batches of <= 500 records / 5 MiB; failed entries are retried).",
    )
    parser.add_argument("--stream", required=True, help="stream name")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1", help="AWS region (default: $AWS_REGION or us-east-1)")
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL_KINESIS") or os.environ.get("AWS_ENDPOINT_URL"),
        help="endpoint override, e.g. http://127.0.0.1:4567 (default: $AWS_ENDPOINT_URL)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-file", help="NDJSON file: one record per non-empty line")
    source.add_argument("--synthetic", type=int, metavar="N", help="N seeded synthetic events")
    parser.add_argument("--keys", type=int, default=50, help="synthetic: distinct keys (default 50)")
    parser.add_argument("--seed", type=int, default=42, help="synthetic: seed (default 42)")
    parser.add_argument("--malformed", type=float, default=0.01, help="synthetic: malformed fraction (default 0.01)")
    parser.add_argument("--partition-key-field", default="key",
                        help="JSON field used as partition key; records without it use their index (default: key)")
    parser.add_argument("--create", action="store_true", help="create the stream first if it does not exist")
    parser.add_argument("--shards", type=int, default=1, help="shard count for --create (default 1)")
    args = parser.parse_args(argv)
    if args.synthetic is not None and args.synthetic < 0:
        parser.error("--synthetic must be >= 0")
    try:
        return _produce(args)
    except KinesisError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
