"""KPL-aggregated Kinesis records, split into their user records.

The Kinesis Producer Library (and Kinesis Agent, Fluent Bit's aggregated mode, aws-kinesis-agg)
packs many user records into one Kinesis record: a 4-byte magic header (F3 89 9A C2), a protobuf
`AggregatedRecord` body and the body's MD5 as a 16-byte trailer (amazon-kinesis-producer's
aggregation-format.md). The body is parsed by protobuf, from the published schema declared below;
nothing here parses the wire format by hand.

Records are handled in the shape boto3's GetRecords returns them (dicts with Data,
SequenceNumber, PartitionKey, ApproximateArrivalTimestamp). A plain record passes through
unchanged; each user record of an aggregate becomes such a dict too, with its sub-sequence
number (`SubSequenceNumber`, its index in the aggregate) and whether it is the aggregate's last
(`LastInRecord`). A user record's position is (sequence number, sub-sequence number), so a
checkpoint inside an aggregate resumes at the next user record (io_connectors.kinesis_core).

What KCL does, and what this reader does:
- An aggregate with a bad MD5 or a body protobuf cannot read: KCL hands it on as if it were a
  plain record; here it becomes one ReadFailure (a dead letter with the reason and the whole
  aggregate as payload), claimed as a whole record.
- After a reshard, a KPL producer with a stale shard map may put an aggregate into a child shard
  that does not own all its user records; KPL then puts every user record of that aggregate
  again, to the right shard. KCL therefore drops an aggregate whole as soon as one of its user
  records hashes outside the shard's hash key range. Here the same rule applies to user records
  that carry an explicit hash key. A user record with only a partition key is always kept: KCL
  would hash its partition key (MD5) and drop aggregates that aggregators which do not group by
  shard (aws-kinesis-agg's RecordAggregator) put on multi-shard streams.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterator, Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from io_connectors.records import UNREADABLE_BLOCK, ReadFailure

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16
MAX_HASH_KEY = 2**128 - 1

HashRange = tuple[int, int]  # a shard's StartingHashKey and EndingHashKey, inclusive


def _message_class() -> type[message.Message]:
    """`AggregatedRecord` of amazon-kinesis-producer's messages.proto (proto2), in a pool of its own
    so that it never clashes with another copy of the schema (aws-kinesis-agg registers one in
    protobuf's default pool)."""
    proto = descriptor_pb2.FileDescriptorProto(name="kpl_aggregation.proto", package="aws.kinesis.protobuf",
                                               syntax="proto2")
    field = descriptor_pb2.FieldDescriptorProto
    required, optional, repeated = field.LABEL_REQUIRED, field.LABEL_OPTIONAL, field.LABEL_REPEATED
    schema = {
        "Tag": [("key", 1, required, field.TYPE_STRING, None), ("value", 2, optional, field.TYPE_STRING, None)],
        "Record": [
            ("partition_key_index", 1, required, field.TYPE_UINT64, None),
            ("explicit_hash_key_index", 2, optional, field.TYPE_UINT64, None),
            ("data", 3, required, field.TYPE_BYTES, None),
            ("tags", 4, repeated, field.TYPE_MESSAGE, ".aws.kinesis.protobuf.Tag"),
        ],
        "AggregatedRecord": [
            ("partition_key_table", 1, repeated, field.TYPE_STRING, None),
            ("explicit_hash_key_table", 2, repeated, field.TYPE_STRING, None),
            ("records", 3, repeated, field.TYPE_MESSAGE, ".aws.kinesis.protobuf.Record"),
        ],
    }
    for name, fields in schema.items():
        described = proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            described.field.add(name=field_name, number=number, label=label, type=kind,
                                **({"type_name": type_name} if type_name else {}))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("aws.kinesis.protobuf.AggregatedRecord")
    get_class = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get_class is not None:
        return get_class(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)  # pragma: no cover - protobuf 3.20


AggregatedRecord = _message_class()


class CorruptAggregate(ValueError):
    """An aggregate whose trailer or body cannot be read; the message is the dead letter's reason."""


def is_aggregated(data: Any) -> bool:
    """True for bytes that start with the KPL magic and are long enough for a body and a trailer
    (KCL's test: anything shorter is a plain record)."""
    return isinstance(data, (bytes, bytearray)) and len(data) > len(MAGIC) + DIGEST_SIZE and data[:4] == MAGIC


def user_records(data: bytes) -> list[tuple[bytes, str, str | None]]:
    """(data, partition key, explicit hash key or None) of each user record of an aggregate, in
    sub-sequence order; CorruptAggregate naming what is wrong."""
    body, trailer = bytes(data[len(MAGIC):-DIGEST_SIZE]), bytes(data[-DIGEST_SIZE:])
    digest = hashlib.md5(body).digest()  # noqa: S324 - the format's checksum, not a security measure
    if digest != trailer:
        raise CorruptAggregate(f"KPL aggregate: MD5 trailer {trailer.hex()} does not match the body's {digest.hex()}")
    aggregate = AggregatedRecord()
    try:
        aggregate.ParseFromString(body)
    except message.DecodeError as err:
        raise CorruptAggregate(f"KPL aggregate: the protobuf body cannot be read ({err})") from None
    keys, hash_keys = list(aggregate.partition_key_table), list(aggregate.explicit_hash_key_table)
    if not aggregate.records:
        raise CorruptAggregate("KPL aggregate: the body holds no user records")
    out = []
    for sub, record in enumerate(aggregate.records):
        if record.partition_key_index >= len(keys):
            raise CorruptAggregate(f"KPL aggregate: user record {sub} names partition key {record.partition_key_index} "
                                   f"of a {len(keys)}-entry table")
        hash_key = None
        if record.HasField("explicit_hash_key_index"):
            if record.explicit_hash_key_index >= len(hash_keys):
                raise CorruptAggregate(f"KPL aggregate: user record {sub} names explicit hash key "
                                       f"{record.explicit_hash_key_index} of a {len(hash_keys)}-entry table")
            hash_key = hash_keys[record.explicit_hash_key_index]
            if not (hash_key.isdigit() and int(hash_key) <= MAX_HASH_KEY):
                raise CorruptAggregate(f"KPL aggregate: user record {sub} has explicit hash key {hash_key[:50]!r}, "
                                       "not a decimal number below 2^128")
        out.append((record.data, keys[record.partition_key_index], hash_key))
    return out


def outside(hash_keys: Sequence[str | None], hash_range: HashRange) -> bool:
    """True when an explicit hash key lies outside the shard's range: the aggregate went to a shard
    its producer did not predict (KCL's rule, applied to explicit hash keys only)."""
    low, high = hash_range
    return any(key is not None and not low <= int(key) <= high for key in hash_keys)


def deaggregate(records: Sequence[dict[str, Any]], hash_range: Callable[[], HashRange | None] = lambda: None,
                on_dropped: Callable[[dict[str, Any], int], None] = lambda record, count: None) -> list[dict[str, Any]]:
    """GetRecords records with every aggregate replaced by its user records, or by one record whose
    Data is a ReadFailure when it is corrupt. `hash_range()` (called only for aggregates with
    explicit hash keys) gives the shard's range, None when unknown; an aggregate outside it is
    dropped and reported to `on_dropped(record, user_records)`."""
    if not any(is_aggregated(record["Data"]) for record in records):
        return list(records)  # no aggregate on the page: the common case costs one scan
    out: list[dict[str, Any]] = []
    for record in records:
        if not is_aggregated(record["Data"]):
            out.append(record)
            continue
        try:
            parts = user_records(record["Data"])
        except CorruptAggregate as err:
            failure = ReadFailure(f"{err} (sequence number {record['SequenceNumber']})", bytes(record["Data"]),
                                  UNREADABLE_BLOCK)
            out.append({**record, "Data": failure})  # claimed and shown as the whole record
            continue
        hash_keys = [key for _, _, key in parts]
        if any(key is not None for key in hash_keys):
            shard_range = hash_range()
            if shard_range is not None and outside(hash_keys, shard_range):
                on_dropped(record, len(parts))
                continue
        last = len(parts) - 1
        out.extend(
            {**record, "Data": data, "PartitionKey": key, "ExplicitHashKey": hash_key, "SubSequenceNumber": sub,
             "LastInRecord": sub == last}
            for sub, (data, key, hash_key) in enumerate(parts)
        )
    return out


def runs(records: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The records in order, cut so that each ReadFailure stands in a run of its own (the fast
    decode paths take batches of records only)."""
    run: list[dict[str, Any]] = []
    for record in records:
        if isinstance(record["Data"], ReadFailure):
            if run:
                yield run
                run = []
            yield [record]
        else:
            run.append(record)
    if run:
        yield run



def position(record: dict[str, Any]) -> str:
    """Where a record is, as batches and dead letters show it: "S", or "S:k" for user record k of
    the aggregate S."""
    sub = record.get("SubSequenceNumber")
    return record["SequenceNumber"] if sub is None else f"{record['SequenceNumber']}:{sub}"
