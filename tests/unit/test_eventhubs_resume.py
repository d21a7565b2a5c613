"""--resume for Event Hubs: stored offsets, start planning per partition, and the checks made
where the pipeline is built (bounded read, readable store, which sources may resume)."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import positions
from io_connectors.after_run import AfterRun
from io_connectors.eventhubs import (
    HELD_OFFSETS,
    HeldOffsets,
    PartitionRef,
    ReadFromEventHubs,
    ReadSettings,
    plan_partitions,
    stored_offsets,
)
from io_connectors.eventhubs_client import EventHubsTarget
from io_connectors.uri import SourceSpec, UriError, parse_source
from pipelines.adapters import eventhubs as adapter
from pipelines.config import ConfigError, build_config

URI = "eventhubs://local/orders?consumer_group=analytics"
LOCAL = EventHubsTarget("local", "orders", bootstrap="127.0.0.1:9", security_protocol="plaintext")


def source_from_uri(spec: SourceSpec, options: PipelineOptions, after_run: AfterRun | None = None) -> beam.PTransform:
    """The adapter, with a run lifecycle of its own that is never committed."""
    return adapter.source_from_uri(spec, options, after_run or AfterRun())


def _options(out: Path, *extra: str) -> PipelineOptions:
    return PipelineOptions(["--source", URI, "--kafka_bootstrap", "127.0.0.1:9", "--eventhubs_security_protocol",
                            "plaintext", "--resume", "--output", str(out), *extra])


def test_stored_offsets_are_the_committed_next_offsets(tmp_path: Path) -> None:
    """Offsets saved by a run come back as {partition: next offset}; no store means no offsets."""
    path = positions.store_path(str(tmp_path), URI)
    assert stored_offsets(None) == {}
    assert stored_offsets(path) == {}
    positions.save_positions(path, URI, {"0": "400", "2": "17"})
    assert stored_offsets(path) == {0: 400, 2: 17}


@pytest.mark.parametrize("stored", [{"0": "-1"}, {"0": ""}, {"shardId-000000000000": "5"}, {"1": "12.5"}])
def test_a_store_that_holds_no_offsets_is_a_clear_error(tmp_path: Path, stored: dict[str, str]) -> None:
    """A store written for another source, or damaged by hand, names the file and the way out
    instead of seeking to a wrong offset."""
    path = positions.store_path(str(tmp_path), URI)
    positions.save_positions(path, URI, stored)
    with pytest.raises(positions.PositionStoreError, match="delete it to read from --eventhubs_start_position") as err:
        stored_offsets(path)
    assert path in str(err.value)


def test_stored_offsets_win_over_the_start_position() -> None:
    """With stored offsets a partition restarts at its own; the others keep the resolved start
    (and its timestamp filter); ids not there yet start at 0 once they appear."""
    refs = plan_partitions(existing=[0, 1, 2], resolved={1: 50, 2: 60}, stored={0: 400, 3: 9}, max_partitions=5,
                           min_timestamp_ms=123)
    assert refs == [
        PartitionRef(0, 400, 123, True),
        PartitionRef(1, 50, 123, True),
        PartitionRef(2, 60, 123, True),
        PartitionRef(3, 9, None, False),  # stored earlier, missing from the metadata now
        PartitionRef(4, 0, None, False),
    ]


def test_without_stored_offsets_every_listed_partition_starts_where_resolved() -> None:
    """No store: the plan is the configured start position, one element per partition id."""
    refs = plan_partitions(existing=[0, 1, 2, 3], resolved={0: 5, 1: 6, 2: 7, 3: 8}, stored={}, max_partitions=2,
                           min_timestamp_ms=None)
    assert [(r.partition, r.start_offset, r.listed) for r in refs] == [(0, 5, True), (1, 6, True), (2, 7, True),
                                                                       (3, 8, True)]


def test_resume_reads_from_and_records_into_the_store_of_its_source(tmp_path: Path) -> None:
    """A bounded --resume read uses <output>/_positions/<hash of the source URI>.json, tracked by the
    run's AfterRun from what the store holds now."""
    store = positions.store_path(str(tmp_path), URI)
    positions.save_positions(store, URI, {"0": "12"})
    after_run = AfterRun()
    transform = source_from_uri(parse_source(URI), _options(tmp_path, "--eventhubs_read_to_latest"), after_run)
    assert transform._read._settings.position_store == store
    assert transform._read._after_run is after_run
    after_run.record(store, "1", "7")  # a claim: raises for a store the run does not track
    assert after_run.positions(store) == {"0": "12", "1": "7"}


def test_reads_without_resume_keep_no_store(tmp_path: Path) -> None:
    """Without --resume nothing is stored: the configured start position decides."""
    options = PipelineOptions(["--source", URI, "--kafka_bootstrap", "127.0.0.1:9", "--eventhubs_read_to_latest",
                               "--output", str(tmp_path)])
    assert source_from_uri(parse_source(URI), options)._read._settings.position_store is None


def test_resume_of_an_endless_read_is_refused(tmp_path: Path) -> None:
    """An endless read never finishes, so it would never commit: the error names the bounds."""
    with pytest.raises(UriError, match="bound the read with --eventhubs_read_to_latest, --max_read_time"):
        source_from_uri(parse_source(URI), _options(tmp_path))
    with pytest.raises(ConfigError, match="bound the read with --eventhubs_read_to_latest, --max_read_time"):
        build_config(_options(tmp_path))


def test_damaged_store_is_refused_before_reading(tmp_path: Path) -> None:
    """A damaged store stops the run where the pipeline is built, naming the file."""
    path = positions.store_path(str(tmp_path), URI)
    Path(path).parent.mkdir(parents=True)
    Path(path).write_text("{half a file")
    with pytest.raises(UriError, match="is unreadable") as err:
        source_from_uri(parse_source(URI), _options(tmp_path, "--max_records", "10"))
    assert path in str(err.value)


@pytest.mark.parametrize("bound", [["--eventhubs_read_to_latest"], ["--max_read_time", "60"],
                                   ["--max_records", "10"]])
def test_bounded_eventhubs_reads_may_resume(tmp_path: Path, bound: list[str]) -> None:
    """Each bound of an Event Hubs read makes --resume acceptable to the option checks."""
    assert build_config(_options(tmp_path, *bound)).resume


def test_sources_without_a_store_refuse_resume(tmp_path: Path) -> None:
    """Pub/Sub needs no store (redelivery); the error says so and what to drop."""
    options = PipelineOptions(["--source", "pubsub://projects/p/subscriptions/s", "--resume", "--max_records", "5",
                               "--output", str(tmp_path)])
    with pytest.raises(ConfigError, match="kinesis:// and eventhubs:// sources only, not pubsub://; drop --resume"):
        build_config(options)


@pytest.mark.parametrize(("extra", "waits"), [([], True), (["--direct_running_mode", "multi_processing"], False),
                                              (["--runner", "FlinkRunner"], False)])
def test_consumer_group_commits_wait_for_the_run_only_on_the_local_runner(extra, waits) -> None:
    """Offsets go to the consumer group on finalization, except on the local in-memory runner,
    which finalizes before it writes: there they wait for the run to succeed."""
    options = PipelineOptions(["--eventhubs_commit_offsets", *extra])
    assert adapter.settings_from_options(options).commit_after_run is waits


def test_held_commits_keep_each_partitions_furthest_offset(monkeypatch) -> None:
    """Bundles finalize in any order; what is committed at the end is each partition's furthest
    next offset, held once for the run by its AfterRun and committed once when it succeeds."""
    committed = []
    monkeypatch.setattr(HeldOffsets, "commit", lambda self: committed.append(self.held()))
    after_run = AfterRun()
    target = EventHubsTarget("local", "orders", consumer_group="analytics")
    holders = set()
    for partition, offset in [(0, 10), (1, 7), (0, 25), (0, 18), (1, 9)]:
        holder = after_run.hold(HELD_OFFSETS, HeldOffsets)
        holder.hold(target, partition, offset)
        holders.add(id(holder))
    assert len(holders) == 1
    assert holder.held() == {target: {0: 25, 1: 9}}
    after_run.commit()
    after_run.commit()
    assert committed == [{target: {0: 25, 1: 9}}]


def test_a_failed_run_commits_no_held_offset() -> None:
    """abandon() closes the holder: nothing is left to commit."""
    after_run = AfterRun()
    holder = after_run.hold(HELD_OFFSETS, HeldOffsets)
    holder.hold(LOCAL, 0, 10)
    after_run.abandon()
    assert holder.held() == {}


@pytest.mark.parametrize("settings", [ReadSettings(read_to_latest=True, position_store="/tmp/store.json"),
                                      ReadSettings(commit_offsets=True, commit_after_run=True)])
def test_settings_that_hold_work_until_the_run_ends_need_an_after_run(settings: ReadSettings) -> None:
    """A position store or offsets held for the run's end without an AfterRun would be lost: refused,
    naming the argument to pass."""
    with pytest.raises(ValueError, match="pass after_run=AfterRun"):
        ReadFromEventHubs(LOCAL, settings)
    ReadFromEventHubs(LOCAL, settings, AfterRun())
