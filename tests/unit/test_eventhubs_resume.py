"""--resume for Event Hubs: stored offsets, start planning per partition, and the checks made
where the pipeline is built (bounded read, readable store, which sources may resume)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import positions
from io_connectors.eventhubs import PartitionRef, plan_partitions, source_from_uri, stored_offsets
from io_connectors.uri import UriError, parse_source
from pipelines.config import ConfigError, build_config

URI = "eventhubs://local/orders?consumer_group=analytics"


@pytest.fixture(autouse=True)
def no_commit_at_exit() -> Iterator[None]:
    """source_from_uri registers stores for the commit at interpreter exit: forget them."""
    yield
    positions.PENDING.reset()


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
                           min_timestamp_ms=123, deadline_s=99.0)
    assert refs == [
        PartitionRef(0, 400, 123, 99.0, True),
        PartitionRef(1, 50, 123, 99.0, True),
        PartitionRef(2, 60, 123, 99.0, True),
        PartitionRef(3, 9, None, 99.0, False),  # stored earlier, missing from the metadata now
        PartitionRef(4, 0, None, 99.0, False),
    ]


def test_without_stored_offsets_every_listed_partition_starts_where_resolved() -> None:
    """No store: the plan is the configured start position, one element per partition id."""
    refs = plan_partitions(existing=[0, 1, 2, 3], resolved={0: 5, 1: 6, 2: 7, 3: 8}, stored={}, max_partitions=2,
                           min_timestamp_ms=None, deadline_s=None)
    assert [(r.partition, r.start_offset, r.listed) for r in refs] == [(0, 5, True), (1, 6, True), (2, 7, True),
                                                                       (3, 8, True)]


def test_resume_reads_from_and_records_into_the_store_of_its_source(tmp_path: Path) -> None:
    """A bounded --resume read uses <output>/_positions/<hash of the source URI>.json."""
    transform = source_from_uri(parse_source(URI), _options(tmp_path, "--eventhubs_read_to_latest"))
    assert transform._read._settings.position_store == positions.store_path(str(tmp_path), URI)


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
    from io_connectors.eventhubs import settings_from_options

    options = PipelineOptions(["--eventhubs_commit_offsets", *extra])
    assert settings_from_options(options).commit_after_run is waits


def test_held_commits_keep_each_partitions_furthest_offset(monkeypatch) -> None:
    """Bundles finalize in any order; what is committed at the end is each partition's furthest
    next offset, registered once for the successful end of the run."""
    from io_connectors.eventhubs import RunCommits
    from io_connectors.eventhubs_client import EventHubsTarget

    registered = []
    monkeypatch.setattr(positions.PENDING, "on_success", registered.append)
    commits = RunCommits()
    target = EventHubsTarget("local", "orders", consumer_group="analytics")
    for partition, offset in [(0, 10), (1, 7), (0, 25), (0, 18), (1, 9)]:
        commits.hold(target, partition, offset)
    assert commits.held() == {target: {0: 25, 1: 9}}
    assert registered == [commits.commit_all]
