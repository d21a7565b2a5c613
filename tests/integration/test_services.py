"""Smoke tests: each test service answers its official client over the wire."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.services import (
    AzuriteService,
    GcsService,
    KafkaService,
    KinesisService,
    MotoService,
    PubSubService,
)

pytestmark = pytest.mark.integration


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _wait_stream_active(client: Any, stream: str) -> None:
    client.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def test_kinesalite_put_get(kinesis_service: KinesisService) -> None:
    client = kinesis_service.client()
    stream = _name("events")
    client.create_stream(StreamName=stream, ShardCount=1)
    _wait_stream_active(client, stream)
    client.put_records(
        StreamName=stream,
        Records=[{"Data": f"e{i}".encode(), "PartitionKey": "k"} for i in range(3)],
    )
    shard_id = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = client.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [b"e0", b"e1", b"e2"]


def test_moto_s3_and_kinesis_split(moto_service: MotoService) -> None:
    s3 = moto_service.client("s3")
    bucket = _name("bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.json", Body=b'{"n": 1}')
    assert s3.get_object(Bucket=bucket, Key="a/b.json")["Body"].read() == b'{"n": 1}'

    kinesis = moto_service.client("kinesis")
    stream = _name("resharded")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    _wait_stream_active(kinesis, stream)
    parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
    low = int(parent["HashKeyRange"]["StartingHashKey"])
    high = int(parent["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(
        StreamName=stream,
        ShardToSplit=parent["ShardId"],
        NewStartingHashKey=str((low + high) // 2),
    )
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    children = [s for s in shards if s.get("ParentShardId") == parent["ShardId"]]
    assert len(children) == 2


def test_azurite_upload_download(azurite_service: AzuriteService) -> None:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite_service.connection_string)
    container = client.create_container(_name("aggregates"))
    container.upload_blob("eu/2024/part-0.json", b'{"count": 3}')
    blob = container.download_blob("eu/2024/part-0.json").readall()
    assert blob == b'{"count": 3}'


def test_pubsub_publish_pull(pubsub_service: PubSubService) -> None:
    publisher = pubsub_service.publisher()
    subscriber = pubsub_service.subscriber()
    project = pubsub_service.project_id
    topic = publisher.topic_path(project, _name("events"))
    subscription = subscriber.subscription_path(project, _name("sub"))
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    publisher.publish(topic, b"hello", region="eu").result(timeout=10)

    response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
    messages = [m.message for m in response.received_messages]
    assert [(m.data, m.attributes["region"]) for m in messages] == [(b"hello", "eu")]
    subscriber.acknowledge(
        subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
    )


def test_gcs_upload_download(gcs_service: GcsService) -> None:
    client = gcs_service.client()
    bucket = client.create_bucket(_name("bucket"))
    bucket.blob("us/part-0.json").upload_from_string(b'{"count": 5}')
    assert client.bucket(bucket.name).blob("us/part-0.json").download_as_bytes() == (
        b'{"count": 5}'
    )


def test_gcs_beam_gcsio(gcs_service: GcsService, monkeypatch: pytest.MonkeyPatch) -> None:
    # Beam's GcsIO (batch deletes included) reaches the emulator through env() alone.
    from apache_beam.io.gcp import gcsio
    from apache_beam.options.pipeline_options import PipelineOptions

    for key, value in gcs_service.env().items():
        monkeypatch.setenv(key, value)
    bucket = gcs_service.client().create_bucket(_name("bucket")).name
    io = gcsio.GcsIO(pipeline_options=PipelineOptions([f"--project={gcs_service.project_id}"]))
    path = f"gs://{bucket}/eu/part-0.json"
    with io.open(path, "wb") as f:
        f.write(b'{"count": 7}')
    assert io.open(path).read() == b'{"count": 7}'
    io.delete_batch([path])
    assert not io.exists(path)


def test_gcs_via_env_in_subprocess(gcs_service: GcsService) -> None:
    # The CLI runs in a subprocess and finds the emulator only through env().
    bucket = gcs_service.client().create_bucket(_name("bucket"))
    code = (
        "from google.auth.credentials import AnonymousCredentials\n"
        "from google.cloud import storage\n"
        "c = storage.Client(credentials=AnonymousCredentials())\n"
        f"c.bucket({bucket.name!r}).blob('x').upload_from_string(b'sub')\n"
    )
    env = {"PATH": "/usr/bin:/bin", **gcs_service.env()}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert bucket.blob("x").download_as_bytes() == b"sub"


def test_kafka_produce_consume_assign(kafka_service: KafkaService) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = _name("events")
    admin = AdminClient({"bootstrap.servers": kafka_service.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(timeout=10)

    producer = Producer({"bootstrap.servers": kafka_service.bootstrap})
    for i in range(3):
        producer.produce(topic, key=b"k", value=json.dumps({"i": i}).encode())
    assert producer.flush(10) == 0

    consumer = Consumer(kafka_service.config(**{"group.id": _name("g"), "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[dict] = []
    deadline = time.monotonic() + 20
    while len(values) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            values.append(json.loads(msg.value()))
    consumer.close()
    assert values == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_kinesalite_stop_and_restart_same_port(kinesis_service_factory: Callable[..., KinesisService]) -> None:
    from botocore.exceptions import EndpointConnectionError

    service = kinesis_service_factory()
    client = service.client(retries={"max_attempts": 1}, connect_timeout=1)
    client.list_streams()

    service.stop()
    assert not service.running
    with pytest.raises(EndpointConnectionError):
        client.list_streams()

    service.start()
    assert client.list_streams()["StreamNames"] == []  # same endpoint, fresh in-memory state


def test_outage_context_on_shared_service(kafka_service: KafkaService) -> None:
    with kafka_service.outage(seconds=0.5):
        assert not kafka_service.running
    assert kafka_service.running
    from confluent_kafka.admin import AdminClient

    AdminClient({"bootstrap.servers": kafka_service.bootstrap}).list_topics(timeout=10)
