"""The native Pub/Sub reader's own logic on the DirectRunner, with a fake subscriber client.

Wire behaviour against the real emulator is in tests/integration/test_pubsub_pipeline.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import pubsub
from io_connectors.after_run import AfterRun
from io_connectors.metrics import (
    BYTES_READ,
    LIVE,
    SOURCE_BACKLOG_RECORDS,
    SOURCE_LAG_MS,
    SOURCE_RECORDS_READ,
    WATERMARK_LAG_MS,
)
from io_connectors.pubsub import OwnedSubscription, PullTracker, ReadFromPubSub, parse_pubsub_path, parse_topic
from io_connectors.pubsub_leases import LeaseKeeper, OldestUnacked
from io_connectors.read_core import listen_to_claims
from io_connectors.records import RawBatch
from io_connectors.uri import UriError
from pipelines.adapters.pubsub import is_dataflow
from runners.direct import finalizes_before_writing

SUB = "projects/p1/subscriptions/sub1"
T0 = 1_767_225_600.0

# The DoFn is pickled; in-process runners unpickle it in this process, so module globals are
# how the fake client, the clock and the test share state.
STATE: dict = {}
LOCK = threading.Lock()


def fake_clock() -> float:
    return STATE["now"]


class FakeSubscriber:
    """pull/acknowledge/modify_ack_deadline over an in-memory backlog; every call is logged."""

    def pull(self, subscription, max_messages, timeout):
        with LOCK:
            STATE["now"] += 1.0  # each pull takes one (fake) second
            backlog = STATE["backlog"]
            taken, STATE["backlog"] = backlog[:max_messages], backlog[max_messages:]
            received = []
            for message in taken:
                STATE["deliveries"] += 1
                ack_id = f"ack-{message.message_id}-{STATE['deliveries']}"
                received.append(SimpleNamespace(ack_id=ack_id, message=message))
            STATE["log"].append(("pull", [r.message.message_id for r in received]))
        return SimpleNamespace(received_messages=received)

    def acknowledge(self, subscription, ack_ids):
        with LOCK:
            STATE["log"].append(("ack", list(ack_ids)))

    def modify_ack_deadline(self, subscription, ack_ids, ack_deadline_seconds):
        with LOCK:
            STATE["log"].append(("modify", list(ack_ids), ack_deadline_seconds))


def fake_factory() -> FakeSubscriber:
    return FakeSubscriber()


def _message(i: int, message_id: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        data=f'{{"n": {i}}}'.encode(),
        attributes={},
        message_id=message_id or f"id{i}",
        publish_time=datetime.fromtimestamp(T0 - 100 + i, tz=UTC),
    )


@pytest.fixture(autouse=True)
def _fake_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    STATE.clear()
    STATE.update(now=T0, backlog=[], deliveries=0, log=[], batches=[])
    monkeypatch.setattr(pubsub, "_default_subscriber", fake_factory)


class _Record(beam.DoFn):
    """Downstream of the reader: logs what it received, in the same log as the fake client."""

    def process(self, batch: RawBatch):
        with LOCK:
            STATE["log"].append(("emit", list(batch.positions)))
            STATE["batches"].append(batch)
        yield batch


def _run(read: ReadFromPubSub, argv: list[str] | None = None) -> list[RawBatch]:
    with beam.Pipeline(options=PipelineOptions(argv or ["--runner=DirectRunner"])) as p:
        _ = p | read | beam.ParDo(_Record())
    return [entry for entry in STATE["log"]]


def _entries(kind: str) -> list:
    return [e for e in STATE["log"] if e[0] == kind]


def test_each_pull_is_one_batch_and_acks_wait_for_bundle_finalization() -> None:
    STATE["backlog"] = [_message(i) for i in range(25)]
    _run(ReadFromPubSub(subscription=SUB, stop_when_idle=3, max_messages=10, clock=fake_clock, native=True))

    emits = _entries("emit")
    assert [len(e[1]) for e in emits] == [10, 10, 5]  # one RawBatch per pull
    assert [m for e in emits for m in e[1]] == [f"id{i}" for i in range(25)]
    acks = _entries("ack")
    acked = [a for e in acks for a in e[1]]
    assert sorted(acked) == sorted(f"ack-id{i}-{i + 1}" for i in range(25))  # each exactly once
    # Every ack comes after the downstream step saw every message (bundle finalization).
    log = STATE["log"]
    first_ack = log.index(acks[0])
    assert max(log.index(e) for e in emits) < first_ack
    # Leases were set to our deadline on pull, before any ack.
    assert any(e[0] == "modify" and e[2] == 60 for e in log[:first_ack])


def test_batches_carry_ids_and_publish_times() -> None:
    STATE["backlog"] = [_message(i) for i in range(3)]
    _run(ReadFromPubSub(subscription=SUB, stop_when_idle=2, clock=fake_clock, native=True))
    (batch,) = STATE["batches"]
    assert batch.source == SUB
    assert list(batch.records) == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert list(batch.positions) == ["id0", "id1", "id2"]
    assert list(batch.arrival_ms) == [int((T0 - 100 + i) * 1000) for i in range(3)]
    assert batch.position(1) == f"{SUB}@id1"


def test_max_records_reads_exactly_that_many_and_leaves_the_rest() -> None:
    STATE["backlog"] = [_message(i) for i in range(30)]
    _run(ReadFromPubSub(subscription=SUB, max_records=12, max_messages=5, clock=fake_clock, native=True))
    emitted = [m for e in _entries("emit") for m in e[1]]
    assert emitted == [f"id{i}" for i in range(12)]
    assert len([a for e in _entries("ack") for a in e[1]]) == 12
    assert len(STATE["backlog"]) == 18  # never pulled, so nothing to redeliver


def test_max_read_time_stops_an_endless_subscription() -> None:
    STATE["backlog"] = [_message(i) for i in range(1000)]
    _run(ReadFromPubSub(subscription=SUB, max_read_time=4.5, max_messages=7, clock=fake_clock, native=True))
    # One fake second per pull: the checks at t=0..4 s pass, the one at 5 s stops the read.
    assert len(_entries("emit")) == 5
    assert len([a for e in _entries("ack") for a in e[1]]) == 35


def test_an_empty_subscription_is_drained_from_the_readers_first_look() -> None:
    """A reader that never saw a message counts as quiet from its first look, not its first empty pull."""
    _run(ReadFromPubSub(subscription=SUB, stop_when_idle=3, clock=fake_clock, native=True))
    assert len(_entries("pull")) == 3  # one fake second each: quiet for 3 s after the third
    assert _entries("emit") == []


def test_checkpoints_finalize_each_bundle_separately() -> None:
    STATE["backlog"] = [_message(i) for i in range(40)]
    _run(
        ReadFromPubSub(
            subscription=SUB, stop_when_idle=3, max_messages=5, bundle_seconds=2, clock=fake_clock, native=True
        )
    )
    acks = _entries("ack")
    assert len(acks) >= 4  # several bundles, each acknowledged on its own finalization
    acked = [a for e in acks for a in e[1]]
    assert len(acked) == len(set(acked)) == 40
    emitted = [m for e in _entries("emit") for m in e[1]]
    assert sorted(emitted) == sorted(f"id{i}" for i in range(40))
    # Acks of a bundle come after its messages were emitted downstream.
    log = STATE["log"]
    for entry in acks:
        ids = {a.split("-")[1] for a in entry[1]}
        emit_positions = [log.index(e) for e in _entries("emit") if ids & set(e[1])]
        assert max(emit_positions) < log.index(entry)


def test_redelivered_duplicates_are_dropped_and_acked() -> None:
    # id3 is delivered twice in one pull, id5 again after a later pull.
    STATE["backlog"] = [_message(i) for i in range(6)] + [_message(3), _message(5)]
    _run(ReadFromPubSub(subscription=SUB, stop_when_idle=3, max_messages=100, clock=fake_clock, native=True))
    emitted = [m for e in _entries("emit") for m in e[1]]
    assert emitted == [f"id{i}" for i in range(6)]
    acked = [a for e in _entries("ack") for a in e[1]]
    assert len(acked) == 8  # the duplicates are acknowledged too, so they stop coming back


def test_streaming_flag_on_the_direct_runner_also_finalizes() -> None:
    STATE["backlog"] = [_message(i) for i in range(8)]
    _run(
        ReadFromPubSub(subscription=SUB, stop_when_idle=2, clock=fake_clock, native=True),
        ["--runner=DirectRunner", "--streaming"],
    )
    assert sorted(m for e in _entries("emit") for m in e[1]) == sorted(f"id{i}" for i in range(8))
    assert len([a for e in _entries("ack") for a in e[1]]) == 8


def test_lease_keeper_extends_held_ids_and_lets_go_after_max_lease() -> None:
    now = [100.0]
    client = FakeSubscriber()
    keeper = LeaseKeeper(client, SUB, deadline_s=30, max_lease_s=60, clock=lambda: now[0], start_thread=False)
    keeper.add(["a", "b"])
    assert STATE["log"][-1] == ("modify", ["a", "b"], 30)
    now[0] += 20
    keeper.add(["c"])
    assert keeper.extend_all() == 3
    assert STATE["log"][-1] == ("modify", ["a", "b", "c"], 30)
    keeper.ack(["b"])
    assert STATE["log"][-1] == ("ack", ["b"])
    now[0] += 45  # a was leased 65 s ago: over max_lease, released for redelivery
    assert keeper.extend_all() == 1
    assert keeper.held() == ["c"]
    keeper.nack(["c"])
    assert STATE["log"][-1] == ("modify", ["c"], 0)
    assert keeper.held() == []


def test_uris_and_topics_are_validated() -> None:
    path = parse_pubsub_path("pubsub://projects/p1/topics/events")
    assert (path.project, path.kind, path.name, path.is_topic) == ("p1", "topics", "events", True)
    assert parse_topic("projects/p1/topics/dlq") == "projects/p1/topics/dlq"
    for bad in ("pubsub://p1/events", "pubsub://projects/p1/queues/x", "pubsub://projects//topics/x"):
        with pytest.raises(UriError, match="pubsub://projects/PROJECT"):
            parse_pubsub_path(bad)
    with pytest.raises(UriError, match="names a subscription"):
        parse_topic("projects/p1/subscriptions/s")
    with pytest.raises(UriError, match="--pubsub_ack_deadline"):
        ReadFromPubSub(subscription=SUB, ack_deadline=5)
    with pytest.raises(UriError, match="--pubsub_bundle_seconds 0 .*; --pubsub_idle_watermark -1 "):
        ReadFromPubSub(subscription=SUB, bundle_seconds=0, idle_watermark=-1)
    with pytest.raises(ValueError, match="exactly one"):
        ReadFromPubSub()


def test_only_an_unbounded_read_gives_an_unbounded_pcollection() -> None:
    """Bounded reads keep a bounded output, so batch aggregation in the global window stays possible."""
    assert not (beam.Pipeline() | ReadFromPubSub(subscription=SUB, native=True)).is_bounded
    for bound in ({"max_records": 5}, {"max_read_time": 5}, {"stop_when_idle": 5}):
        assert (beam.Pipeline() | ReadFromPubSub(subscription=SUB, native=True, **bound)).is_bounded


def test_dataflow_uses_beams_builtin_read_with_id_label_and_timestamp_attribute() -> None:
    from apache_beam.io.gcp.pubsub import ReadFromPubSub as BeamRead

    # The runner name picks the path; the expansion itself is checked on a pipeline that needs
    # no GCP project (constructing a DataflowRunner pipeline reaches for GCS).
    assert is_dataflow(PipelineOptions(["--runner=DataflowRunner"]))
    assert is_dataflow(PipelineOptions(["--runner=TestDataflowRunner"]))
    assert not is_dataflow(PipelineOptions(["--runner=FlinkRunner"]))
    assert not is_dataflow(PipelineOptions([]))
    p = beam.Pipeline(options=PipelineOptions(["--streaming"]))
    sub = "projects/my-project/subscriptions/events"  # Beam checks project-id syntax
    _ = p | ReadFromPubSub(subscription=sub, id_label="uid", timestamp_attribute="ts", native=False)
    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            if isinstance(node.transform, BeamRead):
                found.append(node.transform)

        def visit_transform(self, node):
            pass

    p.visit(Visitor())
    (read,) = found
    source = read._source
    assert (source.full_subscription, source.id_label, source.timestamp_attribute) == (sub, "uid", "ts")
    assert read.with_attributes


def test_local_runs_acknowledge_only_once_the_run_succeeded() -> None:
    """With ack_after_run (the local in-memory runner) finalized bundles are not acknowledged:
    their leases are kept until the run's successful end, then every message is acked once."""
    after_run = AfterRun()
    STATE["backlog"] = [_message(i) for i in range(30)]
    _run(ReadFromPubSub(subscription=SUB, stop_when_idle=3, max_messages=5, bundle_seconds=2, clock=fake_clock,
                        native=True, ack_after_run=True, after_run=after_run))
    assert sorted(m for e in _entries("emit") for m in e[1]) == sorted(f"id{i}" for i in range(30))
    assert _entries("ack") == []  # every bundle was finalized, none acknowledged
    held = after_run.hold(f"pubsub-acks:{SUB}", lambda: pytest.fail("the reader held no acknowledgements"))
    assert held.held() == 30
    after_run.commit()  # what the CLI does once wait_until_finish() succeeded
    acked = [a for e in _entries("ack") for a in e[1]]
    assert sorted(a.split("-")[1] for a in acked) == sorted(f"id{i}" for i in range(30))
    assert held.held() == 0


def test_a_failed_local_run_acknowledges_nothing() -> None:
    """A run that fails leaves its messages unacknowledged, for Pub/Sub to deliver again."""
    after_run = AfterRun()
    STATE["backlog"] = [_message(i) for i in range(10)]
    _run(ReadFromPubSub(subscription=SUB, stop_when_idle=3, clock=fake_clock, native=True, ack_after_run=True,
                        after_run=after_run))
    after_run.abandon()
    after_run.commit()
    assert _entries("ack") == []


def test_held_acks_and_a_topic_source_need_the_runs_after_run() -> None:
    """Work that must wait for the end of the run is refused, naming the fix, without an AfterRun."""
    with pytest.raises(ValueError, match="after_run=AfterRun"):
        ReadFromPubSub(subscription=SUB, ack_after_run=True)
    with pytest.raises(ValueError, match="after_run=AfterRun.*or read an existing subscription"):
        beam.Pipeline() | ReadFromPubSub(topic="projects/p1/topics/t1", native=True)


def test_a_job_subscription_is_deleted_whether_the_run_succeeds_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    deleted: list[str] = []
    monkeypatch.setattr(pubsub, "delete_subscription", deleted.append)
    for end in ("commit", "abandon"):
        after_run = AfterRun()
        name = f"projects/p1/subscriptions/t1-job-{end}"
        after_run.hold(f"pubsub-subscription:{name}", lambda name=name: OwnedSubscription(name))
        getattr(after_run, end)()
        assert deleted[-1] == name
    assert len(deleted) == 2

    def refuse(name: str) -> None:
        raise RuntimeError("service down")

    monkeypatch.setattr(pubsub, "delete_subscription", refuse)
    OwnedSubscription("projects/p1/subscriptions/x").close()  # logged, never raised over the run's own outcome


@pytest.mark.parametrize(
    ("argv", "deferred"),
    [
        ([], True),
        (["--runner=DirectRunner"], True),
        (["--runner=DirectRunner", "--direct_running_mode=multi_processing"], False),
        (["--runner=FlinkRunner"], False),
        (["--runner=DataflowRunner"], False),
    ],
)
def test_acks_wait_for_the_run_only_where_the_runner_finalizes_before_writing(argv, deferred) -> None:
    """Only the local runner in one process finalizes before it writes and can see the run end."""
    assert finalizes_before_writing(PipelineOptions(argv)) is deferred


# --------------------------------------------------------------------------- lag and progress


def test_progress_reports_the_open_record_budget_pubsub_tells_no_backlog() -> None:
    budgeted = PullTracker(OffsetRange(0, 2**62), max_records=12)
    assert budgeted.current_progress().remaining_work == 12
    for position in range(5):
        assert budgeted.try_claim(position)
    assert (budgeted.current_progress().completed_work, budgeted.current_progress().remaining_work) == (5, 7)
    budgeted.try_claim(2**62)  # the read is over
    assert budgeted.current_progress().remaining_work == 0
    endless = PullTracker(OffsetRange(0, 2**62))
    endless.try_claim(0)
    assert endless.current_progress().remaining_work == 1.0  # unknown, not none


def test_oldest_unacked_is_the_age_of_the_oldest_message_of_any_unfinalized_bundle() -> None:
    clock = [100.0]
    unacked = OldestUnacked(max_lease_s=600, clock=lambda: clock[0])
    assert unacked.age_ms() == 0
    unacked.pulled(1, 40_000)
    unacked.pulled(1, 30_000)
    unacked.pulled(2, 90_000)
    assert unacked.age_ms() == 70_000  # bundle 1's oldest message, published at 30 s
    unacked.acknowledged(1)
    assert unacked.age_ms() == 10_000
    clock[0] = 800.0  # bundle 2 was never finalized: its leases lapsed, Pub/Sub delivers it again
    assert unacked.age_ms() == 0


def test_reader_reports_lag_records_and_bytes_once_each() -> None:
    LIVE.reset()
    STATE["backlog"] = [_message(i) for i in range(25)]
    lags: list[float] = []
    stop_listening = listen_to_claims(lambda _count: lags.append(LIVE.gauge(SOURCE_LAG_MS).get(SUB, 0)))
    try:
        _run(ReadFromPubSub(subscription=SUB, stop_when_idle=3, max_messages=10, bundle_seconds=2,
                            clock=fake_clock, native=True))
    finally:
        stop_listening()
    assert LIVE.counter(SOURCE_RECORDS_READ) == 25
    assert LIVE.counter(BYTES_READ) == sum(len(_message(i).data) for i in range(25))
    # Published 100 s before the read: the lag is the age of the oldest message pulled and not yet
    # acknowledged, and falls to 0 once every bundle is finalized (acknowledged).
    assert max(lags) >= 100_000
    assert LIVE.gauge(SOURCE_LAG_MS)[SUB] == 0
    assert SOURCE_BACKLOG_RECORDS not in LIVE.snapshot()[1]  # Pub/Sub does not tell
    assert LIVE.gauge(WATERMARK_LAG_MS)[SUB] >= 0
