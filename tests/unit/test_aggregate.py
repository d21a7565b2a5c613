"""Partials: exact metrics, sketch error bounds, merge semantics and serialization."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from transforms.aggregate import (
    EXACT_LIMIT,
    HLL_RELATIVE_ERROR,
    KLL_RANK_ERROR,
    MergePartials,
    Partial,
    WindowSharder,
)
from transforms.columnar import preaggregate_table, table_of
from transforms.decode import EventColumns
from transforms.idhash import hash_list
from transforms.windowing import parse_window


def exact_rank(values, x):
    return sum(v <= x for v in values) / len(values)


def test_small_groups_are_exact():
    part = Partial.of([5.0, 1.0, 3.0, 2.0, 4.0], hash_list(["a", "b", "a", None, "c"]))
    metrics = part.metrics()
    assert metrics == {
        "count": 5,
        "sum": 15.0,
        "min": 1.0,
        "max": 5.0,
        "mean": 3.0,
        "p50": 3.0,
        "p95": 5.0,
        "p99": 5.0,
        "distinct_ids": 3,
    }


def test_large_groups_switch_to_sketches_within_stated_error():
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1) for _ in range(50_000)]
    ids = [f"id{rng.randrange(20_000)}" for _ in range(50_000)]
    chunks = [Partial.of(values[i : i + 1000], hash_list(ids[i : i + 1000])) for i in range(0, 50_000, 1000)]
    combiner = MergePartials()
    acc = combiner.create_accumulator()
    for chunk in chunks:
        acc = combiner.add_input(acc, chunk)
    acc = pickle.loads(pickle.dumps(acc))  # as after a shuffle
    metrics = acc.metrics()
    assert acc.values is None and acc.ids is None, "a group this large must be sketched"
    assert metrics["count"] == 50_000
    assert metrics["sum"] == pytest.approx(sum(values))
    assert metrics["min"] == min(values) and metrics["max"] == max(values)
    for name, rank in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert abs(exact_rank(values, metrics[name]) - rank) <= 3 * KLL_RANK_ERROR
    true_distinct = len(set(ids))
    assert abs(metrics["distinct_ids"] - true_distinct) <= 3 * HLL_RELATIVE_ERROR * true_distinct


def test_merge_reads_but_never_modifies_its_input():
    left = Partial.of([1.0, 2.0], hash_list(["a", "b"]))
    right = Partial.of(
        [float(i) for i in range(EXACT_LIMIT + 10)], hash_list([str(i) for i in range(EXACT_LIMIT + 10)])
    )
    before = pickle.dumps(right)
    left.merge(right)
    assert pickle.dumps(right) == before
    assert left.count == EXACT_LIMIT + 12


def test_combine_fn_does_not_alias_inputs():
    combiner = MergePartials()
    element = Partial.of([1.0], hash_list(["a"]))
    acc = combiner.add_input(combiner.create_accumulator(), element)
    combiner.add_input(acc, Partial.of([2.0], hash_list(["b"])))
    assert element.count == 1 and list(element.values) == [1.0]


def test_preaggregate_groups_by_window_and_dimensions():
    columns = EventColumns(
        times_ms=[0, 59_999, 60_000, 10],
        ids=["a", "b", "c", "d"],
        values=[1.0, 2.0, 3.0, 4.0],
        dims=[("eu", "k"), ("eu", "k"), ("eu", "k"), ("us", "k")],
    )
    table = table_of(columns, ("region", "key"))
    windows = preaggregate_table(table, parse_window("fixed:60"), ("region", "key"), WindowSharder(1))
    groups = {
        (start, end, dims): part.metrics()["sum"] for (start, end, _), g in windows.items() for dims, part in g.items()
    }
    assert groups == {(0, 60_000, ("eu", "k")): 3.0, (60_000, 120_000, ("eu", "k")): 3.0, (0, 60_000, ("us", "k")): 4.0}


def test_id_hashes_agree_between_row_and_column_paths():
    import pyarrow as pa

    from transforms.idhash import hash_array, hash_one

    ids = ["", "a", "e-42-17", "héllo", "x" * 300, None, "日本"]
    expected = [0 if i is None else hash_one(i) for i in ids]
    assert hash_list(ids) == expected
    assert hash_array(pa.array(ids)).tolist() == expected
    assert len(set(expected)) == len(expected)


def test_avro_dicts_take_the_columnar_path_only_when_the_row_path_would_agree():
    """Records already decoded from an Avro container go through Arrow when clean, and fall back
    to the row path (which dead-letters them) when a value is a boolean or a string."""
    from io_connectors.records import RawBatch
    from transforms.columnar import MIN_BATCH, ColumnarDecoder
    from transforms.decode import EventSchema

    clean = [
        {"event_id": f"e{i}", "event_time": 1000 + i, "region": "eu", "key": "k", "value": float(i)}
        for i in range(MIN_BATCH)
    ]
    decoder = ColumnarDecoder(EventSchema(), "avro")
    table = decoder.decode(RawBatch("f.avro", clean))
    assert table is not None and table.num_rows == MIN_BATCH
    for bad in ({"value": True}, {"value": "12"}, {"event_time": "soon"}):
        assert decoder.decode(RawBatch("f.avro", clean[:-1] + [{**clean[-1], **bad}])) is None


def test_exact_sum_survives_intermediate_overflow():
    from transforms.aggregate import exact_sum

    # math.fsum raises on these; the exact sum fits in a double, or is +-inf when it does not.
    assert exact_sum([1e308, 1e308, -1e308]) == 1e308
    assert exact_sum([1e308, 1e308]) == math.inf
    assert exact_sum([-1e308, -1e308, 5.0]) == -math.inf
    part = Partial.of([1e308, 1e308], [1, 2])
    assert part.overflowed and part.metrics()["sum"] == math.inf
    assert not Partial.of([1e308, -1e308], [1, 2]).overflowed


def _brute_force(events, size_ms, period_ms):
    """(start, dims) -> (count, sorted values, distinct ids) of every window holding an event."""
    out = {}
    for t, value, event_id, dims in events:
        last = t - t % period_ms
        for start in range(last, t - size_ms, -period_ms):
            count, values, ids = out.get((start, dims), (0, [], set()))
            out[(start, dims)] = (count + 1, values + [value], ids | ({event_id} if event_id else set()))
    return {k: (c, sorted(v), len(i)) for k, (c, v, i) in out.items()}


@pytest.mark.parametrize(
    "window", ["fixed:60", "sliding:120,60", "sliding:300,60", "sliding:60,20", "sliding:3600,60", "sliding:7200,3600"]
)
def test_preaggregate_table_matches_brute_force(window):
    """Slots grouped once and merged into the windows covering them equal each window computed alone,
    null ids included (they count, but not as distinct ids)."""
    rng = random.Random(window)
    spec = parse_window(window)
    columns = EventColumns()
    events = []
    for i in range(3000):
        # Two clusters far apart: sliding windows skip the empty stretch between them.
        t = 1_767_225_600_000 + rng.randrange(900_000) + (i % 2) * 50_000_000
        value = float(rng.randrange(-50, 50))
        event_id = None if i % 17 == 0 else f"e{rng.randrange(2000)}"
        dims = (rng.choice(["eu", "us"]), f"k{rng.randrange(4)}")
        events.append((t, value, event_id, dims))
        columns.times_ms.append(t)
        columns.values.append(value)
        columns.ids.append(event_id)
        columns.dims.append(dims)
    got = {}
    table = table_of(columns, ("region", "key"))
    for (start, end, _shard), groups in preaggregate_table(table, spec, ("region", "key"), WindowSharder(4)).items():
        assert end - start == spec.size_ms
        for dims, part in groups.items():
            assert (start, dims) not in got
            metrics = part.metrics()
            assert metrics["sum"] == sum(part.values)
            got[(start, dims)] = (part.count, sorted(part.values), metrics["distinct_ids"])
    assert got == _brute_force(events, spec.size_ms, spec.period_ms or spec.size_ms)


def test_sums_overflowing_midway_stay_exact():
    columns = EventColumns(
        times_ms=[1_767_225_600_000] * 3, ids=["a", "b", "c"], values=[1e308, 1e308, -1e308], dims=[("eu", "k")] * 3
    )
    table = table_of(columns, ("region", "key"))
    [groups] = preaggregate_table(table, parse_window("fixed:60"), ("region", "key"), WindowSharder(1)).values()
    assert groups[("eu", "k")].total == 1e308 and not groups[("eu", "k")].overflowed
    # Two partials whose own sums overflow, in opposite directions: the exact sum is 0.
    up, down = Partial.of([1e308, 1e308], [1, 2]), Partial.of([-1e308, -1e308], [3, 4])
    assert up.total == math.inf and down.total == -math.inf
    assert up.copy().merge(down).total == 0.0
