"""Split versions: reproducible to the byte, stable when data is added, leakage
listed, every parameter recorded in lineage, and bad input refused with nothing made."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from cards.domain.splits import assign
from cards.services.splits import split_make
from catalog.errors import Forbidden, UserError
from catalog.models import Pack, Version
from catalog.selectors import resolve_ref
from catalog.selectors.exports import file_stream
from catalog.services.versions import version_push
from catalog.store import walk_tree
from lineage.models import Run


def _read(version: Version, path: str) -> bytes:
    return b"".join(file_stream(version, path).chunks)


def _push(personas, folder, name="reviews"):
    return version_push(path=str(folder), dataset_name=name, user=personas["alice"]).version


def _csv(path, count, start=0):
    lines = ["id,text,label"] + [f"{i},example {i},{'pos' if i % 4 else 'neg'}" for i in range(start, count)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    return data


def test_the_same_split_twice_gives_byte_identical_split_files(personas, store_url, folder, strata):
    _csv(folder / "reviews.csv", 5000)
    source = _push(personas, folder)
    strata("branch", "reviews", "first")
    strata("branch", "reviews", "second")
    args = ["--id-column", "id", "--label-column", "label", "--ratios", "train=0.8,val=0.1,test=0.1"]
    strata("split", f"reviews@{source.semver}", *args, "--branch", "first")
    strata("split", f"reviews@{source.semver}", *args, "--branch", "second")
    first, second = (resolve_ref(source.dataset, name) for name in ("first", "second"))
    assert first.id != second.id and first.stage == second.stage == "split"
    assert first.tree_id == second.tree_id
    for name in ["splits/train.csv", "splits/val.csv", "splits/test.csv", "splits/split.json"]:
        assert _read(first, name) == _read(second, name)
    # The parent's files are still there, untouched.
    assert _read(first, "reviews.csv") == (folder / "reviews.csv").read_bytes()


def test_the_same_parquet_split_twice_is_byte_identical(personas, store_url, folder):
    table = pa.table({"uid": [f"u{i}" for i in range(3000)], "value": list(range(3000))})
    pq.write_table(table, folder / "table.parquet")
    source = _push(personas, folder)
    kwargs = dict(user=personas["alice"], dataset=source.dataset, source=source, id_column="uid",
                  ratios="train=0.9,test=0.1")  # fmt: skip
    first = split_make(**kwargs).version
    again = split_make(**kwargs)
    assert not again.created and again.version.id == first.id
    from catalog.services.refs import branch_create

    branch_create(dataset=source.dataset, name="other", start=source, actor="alice")
    other = split_make(**kwargs, branch="other").version
    assert _read(first, "splits/train.parquet") == _read(other, "splits/train.parquet")
    train = pq.read_table(io.BytesIO(_read(first, "splits/train.parquet")))
    assert train.schema == table.schema and 2600 < train.num_rows < 2800


def test_adding_ten_percent_new_examples_never_moves_an_earlier_one(personas, store_url, folder):
    _csv(folder / "reviews.csv", 100_000)
    source = _push(personas, folder)
    ratios = "train=0.8,val=0.1,test=0.1"
    before = split_make(
        user=personas["alice"], dataset=source.dataset, source=source, id_column="id", ratios=ratios
    )
    _csv(folder / "reviews.csv", 110_000)
    grown = _push(personas, folder)
    after = split_make(
        user=personas["alice"], dataset=source.dataset, source=grown, id_column="id", ratios=ratios
    )

    def assignments(version):
        result = {}
        for name in ["train", "val", "test"]:
            for row in csv.DictReader(io.StringIO(_read(version, f"splits/{name}.csv").decode())):
                result[row["id"]] = name
        return result

    old, new = assignments(before.version), assignments(after.version)
    assert len(old) == 100_000 and len(new) == 110_000
    assert all(new[example_id] == split for example_id, split in old.items())
    # Ratios within 1% on this many examples.
    for name, ratio in {"train": 0.8, "val": 0.1, "test": 0.1}.items():
        assert abs(after.report.sizes[name] / 110_000 - ratio) < 0.01


def test_five_rows_duplicated_across_train_and_test_are_reported_exactly(personas, store_url, folder):
    ids = [f"row-{i}" for i in range(2000)]
    placed = dict(zip(ids, assign(ids, {"train": 0.7, "test": 0.3}, seed=42), strict=True))
    trains = [i for i in ids if placed[i] == "train"][:5]
    tests = [i for i in ids if placed[i] == "test"][:5]
    twin = dict(zip(trains + tests, list(range(5)) * 2, strict=True))
    lines = ["id,text"] + [f"{i},duplicated text {twin[i]}" if i in twin else f"{i},text of {i}" for i in ids]
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")
    source = _push(personas, folder)
    result = split_make(user=personas["alice"], dataset=source.dataset, source=source, id_column="id",
                        ratios="train=0.7,test=0.3")  # fmt: skip
    expected = sorted([{"splits": {"test": [t], "train": [r]}} for r, t in zip(trains, tests, strict=True)],
                      key=lambda leak: sorted(leak["splits"]["test"] + leak["splits"]["train"]))  # fmt: skip
    assert result.report.leakage == expected
    assert json.loads(_read(result.version, "splits/split.json"))["leakage"] == expected


def test_the_split_is_recorded_as_a_lineage_run_with_every_parameter(personas, store_url, folder):
    _csv(folder / "reviews.csv", 1000)
    source = _push(personas, folder)
    result = split_make(user=personas["alice"], dataset=source.dataset, source=source, id_column="id",
                        label_column="label", ratios="train=0.5,test=0.5", method="random", seed=7,
                        stratify=True)  # fmt: skip
    run = Run.objects.get(node_id=result.run_id)
    assert run.step == "split"
    assert run.params == {
        "source": "reviews@1.0.0", "source_version": source.id, "input": "reviews.csv", "id_column": "id",
        "label_column": "label", "ratios": {"train": 0.5, "test": 0.5}, "method": "random", "seed": 7,
        "stratify": True, "branch": "main",
    }  # fmt: skip
    # Stratified: each split has the whole's label mix exactly.
    assert result.report.labels == {"train": {"neg": 125, "pos": 375}, "test": {"neg": 125, "pos": 375}}
    assert result.version.message.startswith("Split reviews.csv random by id")


def test_a_folder_of_files_is_split_into_one_manifest_per_split(personas, store_url, folder):
    for label in ["cat", "dog"]:
        (folder / label).mkdir()
        for index in range(30):
            (folder / label / f"{index}.txt").write_text(f"{label} picture {index}")
    source = _push(personas, folder, name="pictures")
    result = split_make(user=personas["alice"], dataset=source.dataset, source=source, id_column="path",
                        label_column="folder", ratios="train=0.5,test=0.5")  # fmt: skip
    paths = {w.path for w in walk_tree(result.version.tree_id)}
    assert {"splits/train.jsonl", "splits/test.jsonl", "splits/split.json", "cat/0.txt"} <= paths
    listed = [json.loads(line)["path"] for name in ["train", "test"]
              for line in _read(result.version, f"splits/{name}.jsonl").decode().splitlines()]  # fmt: skip
    assert sorted(listed) == sorted(f"{label}/{i}.txt" for label in ["cat", "dog"] for i in range(30))
    assert sum(result.report.labels["train"].values()) == result.report.sizes["train"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id-column", "uid"], "there is no id column 'uid'"),
        (["--id-column", "text"], "duplicate ids"),
        (["--id-column", "id", "--ratios", "train=0.8,test=0.1"], "add up to 0.9, not 1"),
        (["--id-column", "id", "--label-column", "stars"], "there is no label column 'stars'"),
    ],
)
def test_bad_split_input_is_refused_and_nothing_is_created(personas, store_url, folder, args, message):
    (folder / "reviews.csv").write_text("id,text,label\n1,same,pos\n2,same,neg\n3,other,pos\n")
    _push(personas, folder)
    versions, packs, runs = Version.objects.count(), Pack.objects.count(), Run.objects.count()
    with pytest.raises(UserError, match=message):
        call_command("strata", "split", "reviews@main", *args)
    assert (Version.objects.count(), Pack.objects.count(), Run.objects.count()) == (versions, packs, runs)


def test_viewers_cannot_make_splits(personas, store_url, folder):
    _csv(folder / "reviews.csv", 10)
    source = _push(personas, folder)
    with pytest.raises(Forbidden):
        split_make(user=personas["bob"], dataset=source.dataset, source=source, id_column="id", ratios="a=1")
