"""The position store: atomic, readable errors, and --resume refused where it cannot work."""

from __future__ import annotations

import json

import pytest

from io_connectors.positions import PositionStoreError, load_positions, save_positions, store_path
from tests.reliability.helpers import run_cli


def test_store_round_trip_and_atomic_replace(tmp_path):
    """Saving twice leaves exactly the latest positions and no temporary file beside them."""
    path = store_path(str(tmp_path), "kinesis://s?region=us-east-1")
    assert load_positions(path) == {}
    save_positions(path, "kinesis://s", {"shardId-0": "10"})
    save_positions(path, "kinesis://s", {"shardId-0": "20", "shardId-1": "5"})
    assert load_positions(path) == {"shardId-0": "20", "shardId-1": "5"}
    assert [p.name for p in (tmp_path / "_positions").iterdir()] == [path.rsplit("/", 1)[1]]
    assert json.loads((tmp_path / "_positions" / path.rsplit("/", 1)[1]).read_text())["source"] == "kinesis://s"


def test_corrupt_store_is_a_clear_error(tmp_path):
    """A damaged store names the file and says what to do, instead of resuming from nowhere."""
    path = store_path(str(tmp_path), "kinesis://s")
    (tmp_path / "_positions").mkdir()
    (tmp_path / "_positions" / path.rsplit("/", 1)[1]).write_text("{half a file")
    with pytest.raises(PositionStoreError, match="delete it to read from the start position"):
        load_positions(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "synthetic://?events=10"], "--resume keeps positions for kinesis:// and eventhubs:// sources"),
        (["--source", "kinesis://s?region=us-east-1"], "bound the read with --kinesis_read_to_latest"),
        (["--source", "eventhubs://local/h", "--kafka_bootstrap", "127.0.0.1:9"],
         "bound the read with --eventhubs_read_to_latest"),
        (["--source", "kinesis://s?region=us-east-1", "--kinesis_read_to_latest",
          "--direct_running_mode", "multi_processing"], "--resume needs --direct_running_mode=in_memory"),
    ],
)
def test_resume_refused_where_it_cannot_work(tmp_path, argv, message):
    """--resume on a source without a store, on an unbounded read that would never commit, or in
    worker processes whose positions never reach the store, exits with a sentence saying what to
    change."""
    done = run_cli({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, *argv, "--resume", "--output", str(tmp_path),
                   check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
