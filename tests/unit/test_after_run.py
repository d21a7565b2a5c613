"""The explicit run lifecycle: positions and held work are committed by whoever ran the job, only
after it succeeded; a failed run commits nothing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.runners.runner import PipelineState

from io_connectors import positions
from io_connectors.after_run import AfterRun, run_and_commit


class Holder:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def commit(self) -> None:
        if self.fail:
            raise RuntimeError("the service said no")
        self.log.append(f"commit {self.name}")

    def close(self) -> None:
        self.log.append(f"close {self.name}")


class Result:
    def __init__(self, state: str | None = PipelineState.DONE, error: BaseException | None = None) -> None:
        self.state, self.error = state, error

    def wait_until_finish(self) -> str | None:
        if self.error is not None:
            raise self.error
        return self.state


def _tracked(tmp_path: Path) -> tuple[AfterRun, str]:
    store = positions.store_path(str(tmp_path), "kinesis://s")
    after_run = AfterRun()
    after_run.track(store, "kinesis://s")
    after_run.record(store, "shard-0", "41")
    return after_run, store


def test_a_successful_run_stores_positions_then_sends_what_is_held(tmp_path: Path) -> None:
    after_run, store = _tracked(tmp_path)
    log: list[str] = []
    after_run.hold("acks", lambda: Holder(log, "acks"))
    assert run_and_commit(Result(), after_run) == PipelineState.DONE
    assert positions.load_positions(store) == {"shard-0": "41"}
    assert log == ["commit acks"]
    after_run.commit()  # once only
    assert log == ["commit acks"]


@pytest.mark.parametrize("result", [Result(error=RuntimeError("a worker died")), Result(PipelineState.FAILED),
                                    Result(error=KeyboardInterrupt())])
def test_a_failed_or_stopped_run_commits_nothing_and_releases_what_is_held(tmp_path: Path, result: Result) -> None:
    after_run, store = _tracked(tmp_path)
    log: list[str] = []
    after_run.hold("acks", lambda: Holder(log, "acks"))
    if result.error is not None:
        with pytest.raises(type(result.error)):
            run_and_commit(result, after_run)
    else:
        run_and_commit(result, after_run)
    assert not Path(store).exists()
    assert log == ["close acks"]


def test_a_run_resumes_from_what_the_last_successful_run_stored(tmp_path: Path) -> None:
    first, store = _tracked(tmp_path)
    first.commit()
    second = AfterRun()
    second.track(store, "kinesis://s")
    second.record(store, "shard-1", "7")
    assert second.positions(store) == {"shard-0": "41", "shard-1": "7"}
    second.abandon()
    assert json.loads(Path(store).read_text())["positions"] == {"shard-0": "41"}


def test_one_failing_holder_does_not_stop_the_others(tmp_path: Path) -> None:
    after_run = AfterRun()
    log: list[str] = []
    after_run.hold("a", lambda: Holder(log, "a", fail=True))
    after_run.hold("b", lambda: Holder(log, "b"))
    after_run.commit()
    assert log == ["commit b"]


def test_hold_makes_one_holder_per_key() -> None:
    after_run = AfterRun()
    made: list[Holder] = []

    def make() -> Holder:
        made.append(Holder([], "x"))
        return made[-1]

    assert after_run.hold("k", make) is after_run.hold("k", make)
    assert len(made) == 1


def test_a_pickled_copy_reaches_the_original_in_this_process(tmp_path: Path) -> None:
    after_run, store = _tracked(tmp_path)
    copy = pickle.loads(pickle.dumps(after_run))
    assert copy is after_run
    copy.record(store, "shard-0", "42")
    assert after_run.positions(store) == {"shard-0": "42"}


def test_a_copy_in_another_process_holds_nothing_and_says_why(tmp_path: Path) -> None:
    after_run, store = _tracked(tmp_path)
    data = pickle.dumps(after_run)
    del after_run  # as in a worker process, where the original does not exist
    detached = pickle.loads(data)
    assert detached.detached
    detached.record(store, "shard-0", "99")  # ignored: nothing to commit from a worker
    with pytest.raises(RuntimeError, match="in_memory"):
        detached.hold("acks", lambda: Holder([], "acks"))


def test_recording_into_an_untracked_store_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="track"):
        AfterRun().record(str(tmp_path / "nope.json"), "a", "1")


def test_readers_record_through_a_copy_the_runner_pickled(tmp_path: Path) -> None:
    after_run, store = _tracked(tmp_path)

    class Record(beam.DoFn):
        def __init__(self, run: AfterRun) -> None:
            self._run = run

        def process(self, element: int) -> None:
            self._run.record(store, f"p{element}", str(element * 10))

    with beam.Pipeline() as pipeline:
        _ = pipeline | beam.Create([1, 2]) | beam.ParDo(Record(after_run))
    after_run.commit()
    assert positions.load_positions(store) == {"shard-0": "41", "p1": "10", "p2": "20"}


def test_the_start_key_names_where_a_run_starts(tmp_path: Path) -> None:
    assert AfterRun().start_key() == ""  # nothing tracked: no --resume
    first, store = _tracked(tmp_path)
    retry = AfterRun()
    retry.track(store, "kinesis://s")
    assert first.start_key() == retry.start_key() != ""  # a re-run after a failure starts where it did
    first.record(store, "shard-0", "99")
    assert first.start_key() == retry.start_key()  # what a run reads does not change where it started
    first.commit()
    after = AfterRun()
    after.track(store, "kinesis://s")
    assert after.start_key() != first.start_key()  # the next run starts after the committed positions
