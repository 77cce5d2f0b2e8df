"""Reproducible train/validation/test splits of a table, with a leakage check.

Plain Python over pyarrow, no Django.

- ``hash``: an example's split is a pure function of (seed, id): the BLAKE3 hash of
  both, read as a number in [0, 1), falls into one of the cumulative ratio
  intervals. Adding examples never moves an existing one, and with 10,000 or more
  examples each split's share is within about a percent of its ratio. Every label's
  examples are split by that same rule, so each split's label mix follows the
  whole's in expectation; exact per-label quotas would move examples when data is
  added, which a stable split must never do.
- ``random``: the seeded shuffle of scikit-learn's ``train_test_split`` style: ids
  sorted, shuffled with the seed, cut at the ratios (per label when stratified).
  Reproducible for the same data and seed, but adding data moves examples.

The leakage check lists examples whose content (every column but the id) is
identical while they sit in different splits.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from blake3 import blake3

METHODS = ("hash", "random")


class SplitError(ValueError):
    """A split that cannot be made as asked; the message says why."""


def parse_ratios(text: str) -> dict[str, float]:
    """'train=0.8,val=0.1,test=0.1' -> {'train': 0.8, 'val': 0.1, 'test': 0.1}."""
    ratios: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name.strip():
            raise SplitError(f"{part.strip()!r} is not NAME=RATIO; write e.g. train=0.8,val=0.1,test=0.1.")
        name = name.strip()
        if not name.replace("-", "").replace("_", "").isalnum():
            raise SplitError(f"{name!r} is not a valid split name: use letters, digits, '-' and '_'.")
        try:
            ratio = float(value)
        except ValueError:
            raise SplitError(f"the ratio of {name} is not a number: {value!r}.") from None
        if not 0 < ratio <= 1:
            raise SplitError(f"the ratio of {name} must be above 0 and at most 1, not {ratio}.")
        if name in ratios:
            raise SplitError(f"the split {name} is named twice.")
        ratios[name] = ratio
    if abs(sum(ratios.values()) - 1.0) > 1e-6:
        raise SplitError(f"the ratios add up to {sum(ratios.values()):g}, not 1.")
    return ratios


def hash_unit(seed: int, example_id: str) -> float:
    """A number in [0, 1) that depends only on the seed and the id."""
    digest = blake3(f"{seed}\x00{example_id}".encode()).digest(length=8)
    return int.from_bytes(digest, "big") / 2**64


def _bucket(value: float, names: Sequence[str], bounds: Sequence[float]) -> str:
    for name, bound in zip(names, bounds, strict=True):
        if value < bound:
            return name
    return names[-1]


def _bounds(ratios: dict[str, float]) -> tuple[list[str], list[float]]:
    names = list(ratios)
    bounds, total = [], 0.0
    for name in names:
        total += ratios[name]
        bounds.append(total)
    bounds[-1] = 1.0
    return names, bounds


def assign(
    ids: Sequence[str],
    ratios: dict[str, float],
    *,
    method: str = "hash",
    seed: int = 42,
    labels: Sequence[str] | None = None,
    stratify: bool = False,
) -> list[str]:
    """The split name of each id, in the order given."""
    if method not in METHODS:
        raise SplitError(f"{method!r} is not a split method: use hash or random.")
    if stratify and labels is None:
        raise SplitError("a stratified split needs a label column.")
    names, bounds = _bounds(ratios)
    if method == "hash":
        # Compare the hash as an integer against integer bounds: the same rule as
        # `hash_unit` < bound, at half the cost per id on a million rows.
        limits = [int(bound * 2**64) for bound in bounds[:-1]]
        prefix = f"{seed}\x00"
        return [
            names[
                bisect_right(
                    limits, int.from_bytes(blake3((prefix + example_id).encode()).digest(length=8), "big")
                )
            ]
            for example_id in ids
        ]
    groups: dict[str, list[int]] = defaultdict(list)
    for position in range(len(ids)):
        groups[labels[position] if stratify and labels is not None else ""].append(position)
    result = [""] * len(ids)
    rng = random.Random(seed)
    for group in sorted(groups):
        positions = sorted(groups[group], key=lambda p: ids[p])
        rng.shuffle(positions)
        start = 0
        for index, name in enumerate(names):
            end = len(positions) if index == len(names) - 1 else start + round(ratios[name] * len(positions))
            for position in positions[start:end]:
                result[position] = name
            start = end
    return result


@dataclass
class SplitReport:
    method: str
    seed: int
    ratios: dict[str, float]
    id_column: str
    label_column: str | None
    stratify: bool
    sizes: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    leakage: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "ratios": self.ratios,
            "id_column": self.id_column,
            "label_column": self.label_column,
            "stratify": self.stratify,
            "sizes": self.sizes,
            "labels": self.labels,
            "leakage": self.leakage,
        }


def split_table(
    table: pa.Table,
    *,
    id_column: str,
    ratios: dict[str, float],
    method: str = "hash",
    seed: int = 42,
    label_column: str | None = None,
    stratify: bool = False,
) -> tuple[dict[str, pa.Table], SplitReport]:
    """Split a table; return each split's rows (in the input's order) and a report."""
    if id_column not in table.schema.names:
        raise SplitError(
            f"there is no id column {id_column!r}; the columns are {', '.join(table.schema.names)}."
        )
    if label_column is not None and label_column not in table.schema.names:
        raise SplitError(f"there is no label column {label_column!r}.")
    ids_column = table.column(id_column)
    if ids_column.null_count:
        raise SplitError(f"the id column {id_column!r} has empty values.")
    ids = [str(value) for value in ids_column.to_pylist()]
    duplicates = [value for value, count in Counter(ids).items() if count > 1]
    if duplicates:
        raise SplitError(
            f"the id column {id_column!r} has {len(duplicates)} duplicate ids (for example {duplicates[0]!r})."
        )
    labels = (
        [("" if v is None else str(v)) for v in table.column(label_column).to_pylist()]
        if label_column
        else None
    )
    assigned = assign(ids, ratios, method=method, seed=seed, labels=labels, stratify=stratify)
    assigned_array = pa.array(assigned)
    report = SplitReport(method, seed, ratios, id_column, label_column, stratify)
    parts: dict[str, pa.Table] = {}
    for name in ratios:
        mask = pc.equal(assigned_array, name)
        parts[name] = table.filter(mask)
        report.sizes[name] = parts[name].num_rows
        if labels is not None:
            counted = Counter(label for label, split in zip(labels, assigned, strict=True) if split == name)
            report.labels[name] = dict(sorted(counted.items()))
    report.leakage = find_leakage(table, id_column, assigned)
    return parts, report


def find_leakage(table: pa.Table, id_column: str, assigned: Sequence[str]) -> list[dict[str, Any]]:
    """Examples with identical content (every column but the id) in different splits.

    Returns one entry per group of identical examples that spans splits, with the
    ids in each split. Grouping is one vectorised hash aggregation over the content.
    """
    content_columns = [name for name in table.schema.names if name != id_column]
    if not content_columns:
        return []
    work = table.select(content_columns).append_column("__split", pa.array(assigned))
    work = work.append_column("__id", pc.cast(table.column(id_column), pa.string()))
    try:
        grouped = work.group_by(content_columns, use_threads=False).aggregate(
            [("__split", "count_distinct"), ("__split", "list"), ("__id", "list")]
        )
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        # Nested column types cannot be grouped by Arrow: compare their text instead.
        text = [
            pc.cast(work.column(name), pa.string())
            if pa.types.is_nested(work.column(name).type)
            else work.column(name)
            for name in content_columns
        ]
        work = pa.table(
            dict(zip(content_columns, text, strict=True))
            | {"__split": work.column("__split"), "__id": work.column("__id")}
        )
        grouped = work.group_by(content_columns, use_threads=False).aggregate(
            [("__split", "count_distinct"), ("__split", "list"), ("__id", "list")]
        )
    leaky = grouped.filter(pc.greater(grouped.column("__split_count_distinct"), 1))
    leaks = []
    for splits, ids in zip(
        leaky.column("__split_list").to_pylist(), leaky.column("__id_list").to_pylist(), strict=True
    ):
        by_split: dict[str, list[str]] = defaultdict(list)
        for split, example_id in zip(splits, ids, strict=True):
            by_split[split].append(example_id)
        leaks.append({"splits": {name: sorted(by_split[name]) for name in sorted(by_split)}})
    leaks.sort(key=lambda leak: sorted(i for ids_ in leak["splits"].values() for i in ids_))
    return leaks
