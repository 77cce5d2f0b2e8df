"""Splits are stable, reproducible and checked for leakage."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from cards.domain.splits import SplitError, assign, parse_ratios, split_table

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def _table(count: int, seed: int = 1, start: int = 0) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "id": [f"ex-{i}" for i in range(start, start + count)],
            "text": [f"text {i} {rng.random()}" for i in range(start, start + count)],
            "label": [rng.choice(["pos", "neg", "neutral"]) for _ in range(count)],
        }
    )


def test_the_same_split_twice_gives_the_same_assignment():
    table = _table(5000)
    first, _ = split_table(table, id_column="id", ratios=RATIOS)
    second, _ = split_table(table, id_column="id", ratios=RATIOS)
    assert all(first[name].equals(second[name]) for name in RATIOS)
    random_a, _ = split_table(table, id_column="id", ratios=RATIOS, method="random", seed=7)
    random_b, _ = split_table(table, id_column="id", ratios=RATIOS, method="random", seed=7)
    assert all(random_a[name].equals(random_b[name]) for name in RATIOS)


def test_adding_ten_percent_new_examples_moves_no_existing_one():
    ids = [f"id-{i}" for i in range(100_000)]
    before = assign(ids, RATIOS, seed=42)
    more = ids + [f"id-{i}" for i in range(100_000, 110_000)]
    after = assign(more, RATIOS, seed=42)
    assert after[:100_000] == before


def test_hash_split_ratios_are_within_one_percent():
    sizes = {name: 0 for name in RATIOS}
    for split in assign([f"x{i}" for i in range(10_000)], RATIOS, seed=3):
        sizes[split] += 1
    for name, ratio in RATIOS.items():
        assert abs(sizes[name] / 10_000 - ratio) <= 0.01, sizes


def test_stratified_random_split_keeps_each_label_at_the_ratio():
    table = _table(3000)
    _, report = split_table(
        table, id_column="id", ratios=RATIOS, method="random", label_column="label", stratify=True
    )
    for label, total in _counts(table.column("label").to_pylist()).items():
        assert abs(report.labels["train"].get(label, 0) - 0.8 * total) <= 1


def test_five_rows_duplicated_across_train_and_test_are_reported_exactly():
    table = _table(2000)
    parts, _ = split_table(table, id_column="id", ratios=RATIOS)
    train_rows = parts["train"].slice(0, 5).to_pylist()
    copies = [dict(row, id=f"copy-{index}") for index, row in enumerate(train_rows)]
    # Put the copies in test: pick ids that the hash sends to test.
    test_ids = [f"dup-{i}" for i in range(10_000) if assign([f"dup-{i}"], RATIOS)[0] == "test"][:5]
    for copy, test_id in zip(copies, test_ids, strict=True):
        copy["id"] = test_id
    leaky = pa.concat_tables([table, pa.Table.from_pylist(copies, schema=table.schema)])
    _, report = split_table(leaky, id_column="id", ratios=RATIOS, label_column="label")
    assert len(report.leakage) == 5
    pairs = {(leak["splits"]["train"][0], leak["splits"]["test"][0]) for leak in report.leakage}
    assert pairs == {(row["id"], test_id) for row, test_id in zip(train_rows, test_ids, strict=True)}


def test_sizes_and_label_distribution_per_split_are_reported():
    table = _table(1000)
    parts, report = split_table(table, id_column="id", ratios=RATIOS, label_column="label")
    assert sum(report.sizes.values()) == 1000
    assert report.sizes == {name: parts[name].num_rows for name in RATIOS}
    assert sum(sum(c.values()) for c in report.labels.values()) == 1000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"id_column": "nope"}, "no id column 'nope'"),
        ({"id_column": "id", "label_column": "nope"}, "no label column 'nope'"),
    ],
)
def test_bad_columns_are_refused(kwargs, message):
    with pytest.raises(SplitError, match=message):
        split_table(_table(10), ratios=RATIOS, **kwargs)


def test_duplicate_ids_are_refused():
    table = pa.table({"id": ["a", "b", "a"], "text": ["x", "y", "z"]})
    with pytest.raises(SplitError, match="1 duplicate ids"):
        split_table(table, id_column="id", ratios=RATIOS)


@pytest.mark.parametrize(
    "text, message",
    [
        ("train=0.8,test=0.1", "add up to 0.9, not 1"),
        ("train=0.8,test", "not NAME=RATIO"),
        ("train=x,test=0.2", "not a number"),
        ("train=1.2,test=-0.2", "above 0"),
        ("a=0.5,a=0.5", "named twice"),
    ],
)
def test_bad_ratios_are_refused(text, message):
    with pytest.raises(SplitError, match=message):
        parse_ratios(text)


def _counts(values):
    counted = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return counted
