"""The built-in checks of a change request (changes.checks), on real versions: each
one passing, and failing or asking for an approver the way a steward would notice."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cards.services.cards import card_import, version_mark_golden
from cards.services.splits import split_make
from catalog.models import Branch, Dataset, Version
from catalog.services.merges import merge_request
from catalog.services.refs import branch_create
from changes.checks import (
    BUILTIN_CHECKS,
    CARD_MINIMUM_BY_STAGE,
    CheckResult,
    builtin_checks,
    type_holds,
)
from tests.factories.datasets import push

LABELS = "id,label,score\n1,cat,0.5\n2,dog,0.25\n"

# Every item of the card checklist filled: 100% complete.
COMPLETE_BODY = """
# Reviews

## Dataset Summary

Product reviews with a sentiment label.

## Intended Uses

Training sentiment classifiers.

## Out-of-Scope Uses

Judging real people.

## Data Sources and Collection

Public product pages, collected in March.

## Annotation Process

Two annotators per review.

## Bias, Risks, and Limitations

Mostly English reviews of electronics.

## Personal and Sensitive Information

Names are removed.

## Licensing and Citation

CC BY 4.0.

## Maintenance

The data team, monthly.

## Contact

data-team@example.org
"""

COMPLETE_META = """pretty_name: Reviews
license: cc-by-4.0
task_categories:
- text-classification
"""

THIN_CARD = "---\npretty_name: Reviews\n---\n# Reviews\n\n## Dataset Summary\n\nReviews.\n"


def _card(front: str = "", body: str = COMPLETE_BODY) -> str:
    return f"---\n{COMPLETE_META}{front}---\n{body}"


def _branch(version: Version, name: str = "dev") -> None:
    branch_create(dataset=version.dataset, name=name, start=version, actor="alice")


def _head(dataset: str, branch: str) -> Version:
    return Branch.objects.select_related("head").get(dataset__name=dataset, name=branch).head


def _checks(dataset: str = "reviews", source: str = "dev", into: str = "main", dry_run: bool = True):
    """The built-in checks of merging `source` into `into`, by name, with the dry
    run worked out as a change request's worker does (or none, as if it failed)."""
    result = (
        merge_request(user=None, dataset_name=dataset, source=source, into=into, dry_run=True).result
        if dry_run
        else None
    )
    results = builtin_checks(
        dataset=Dataset.objects.get(name=dataset),
        head=_head(dataset, source),
        target_head=_head(dataset, into),
        dry_run=result,
    )
    assert [r.name for r in results] == list(BUILTIN_CHECKS)
    assert all(isinstance(r, CheckResult) and r.summary for r in results)
    return {r.name: r for r in results}


def _with_card(tmp_path, files: dict[str, bytes | str], card: str, **options) -> Version:
    """A first version on main with its card, and branch dev from it."""
    first = push(tmp_path, "reviews", files, **options)
    head = card_import(user=None, dataset=first.dataset, text=card, author="alice")
    _branch(head)
    return head


def _parquet(columns: dict[str, list]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


# -- every check at once ----------------------------------------------------------------


def test_a_plain_change_passes_every_check_and_says_which_version_it_would_make(db, local_store, tmp_path):
    _with_card(tmp_path, {"labels.csv": LABELS}, _card())
    push(tmp_path, "reviews", {"labels.csv": LABELS + "3,emu,0.75\n"}, branch="dev")

    checks = _checks()

    assert {name: check.state for name, check in checks.items()} == dict.fromkeys(BUILTIN_CHECKS, "passed")
    assert checks["merge"].summary == "dev (1.1.0) merges into main without conflicts."
    assert checks["schema contract"].summary == "no schema contract declared on main"
    assert checks["split leakage"].summary == "no split in this change"
    # 1.0.0 pushed, 1.0.1 its card, 1.1.0 the push to dev: a minor merge makes 1.2.0.
    assert checks["semantic version"].summary.startswith("A minor change (")
    assert checks["semantic version"].summary.endswith("the merge would make main 1.2.0.")
    assert checks["card completeness"].summary == (
        "The card of dev (1.1.0) is 100% complete; main (raw) needs no minimum."
    )
    assert checks["card completeness"].metrics == {"completeness": 100.0, "minimum": 0.0}


# -- merge ------------------------------------------------------------------------------


def test_a_conflicting_dry_run_fails_the_merge_check_naming_the_paths(db, local_store, tmp_path):
    base = push(tmp_path, "reviews", {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"})
    _branch(base)
    push(tmp_path, "reviews", {"a.txt": "a main\n", "b.txt": "b main\n", "c.txt": "c\n"})
    push(tmp_path, "reviews", {"a.txt": "a dev\n", "b.txt": "b dev\n", "c.txt": "c\n"}, branch="dev")

    checks = _checks()

    merge = checks["merge"]
    assert merge.state == "failed"
    assert merge.summary.startswith("The merge into main has 2 conflicts: a.txt, b.txt.")
    assert merge.metrics == {"conflicts": 2.0}
    # With conflicts the kind of change is not worked out, and the check says so.
    assert checks["semantic version"].state == "failed"
    assert "not known" in checks["semantic version"].summary


def test_a_row_conflict_is_named_by_its_key_and_column(db, local_store, tmp_path):
    head = _with_card(tmp_path, {"labels.csv": LABELS}, "---\nkey_column: id\n---\n# Reviews\n")
    push(tmp_path, "reviews", {"labels.csv": LABELS.replace("cat", "lynx")})
    push(tmp_path, "reviews", {"labels.csv": LABELS.replace("cat", "puma")}, branch="dev")
    assert head.card_id is not None

    merge = _checks()["merge"]

    assert merge.state == "failed"
    assert "1 conflict: labels.csv key 1 column label." in merge.summary


def test_a_dry_run_that_failed_fails_the_merge_check(db, local_store, tmp_path):
    base = push(tmp_path, "reviews", {"a.txt": "a\n"})
    _branch(base)
    push(tmp_path, "reviews", {"a.txt": "a dev\n"}, branch="dev")

    checks = _checks(dry_run=False)

    assert checks["merge"].state == "failed"
    assert checks["merge"].summary.startswith("The merge dry run of reviews@1.1.0 into reviews@1.0.0 failed")
    assert checks["semantic version"].state == "failed"


# -- schema contract --------------------------------------------------------------------

STRATA_CONTRACT = """schema:
  labels.csv:
    id: int64
    label: string
    score: float64
"""


def test_a_column_dropped_from_a_declared_table_fails_naming_it(db, local_store, tmp_path):
    _with_card(tmp_path, {"labels.csv": LABELS}, _card(STRATA_CONTRACT))
    push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n"}, branch="dev")

    schema = _checks()["schema contract"]

    assert schema.state == "failed"
    assert schema.summary == (
        "The change breaks the schema contract on main: labels.csv has no column score (float64)."
    )
    assert schema.metrics == {"tables": 1.0, "violations": 1.0}


def test_a_changed_type_fails_naming_the_declared_and_found_types(db, local_store, tmp_path):
    _with_card(tmp_path, {"labels.csv": LABELS}, _card(STRATA_CONTRACT))
    push(tmp_path, "reviews", {"labels.csv": "id,label,score\na1,cat,0.5\na2,dog,high\n"}, branch="dev")

    schema = _checks()["schema contract"]

    assert schema.state == "failed"
    assert "labels.csv column id is string, declared int64" in schema.summary
    assert "labels.csv column score is string, declared float64" in schema.summary


def test_a_new_column_keeps_the_contract_and_is_named(db, local_store, tmp_path):
    _with_card(tmp_path, {"labels.csv": LABELS}, _card(STRATA_CONTRACT))
    push(tmp_path, "reviews", {"labels.csv": "id,label,score,lang\n1,cat,0.5,en\n"}, branch="dev")

    schema = _checks()["schema contract"]

    assert schema.state == "passed"
    assert schema.summary == (
        "The schema contract on main holds in 1 declared table of dev (2.0.0). New columns: labels.csv lang."
    )


HF_CONTRACT = """dataset_info:
  config_name: plain
  features:
  - name: id
    dtype: int64
  - name: text
    dtype: string
  - name: score
    dtype: float64
  - name: label
    dtype:
      class_label:
        names:
          '0': neg
          '1': pos
configs:
- config_name: plain
  data_files:
  - split: train
    path: data/train-*
"""


def test_a_hugging_face_features_contract_holds_on_the_tables_its_config_names(db, local_store, tmp_path):
    good = _parquet({"id": [1, 2], "text": ["a", "b"], "score": [0.5, 0.1], "label": [0, 1]})
    # Not named by the config's data_files: not held to the contract.
    other = _parquet({"something": ["else"]})
    _with_card(tmp_path, {"data/train-0.parquet": good, "other.parquet": other}, _card(HF_CONTRACT))
    more = _parquet({"id": [3], "text": ["c"], "score": [0.9], "label": [1], "source": ["web"]})
    push(
        tmp_path,
        "reviews",
        {"data/train-0.parquet": good, "data/train-1.parquet": more, "other.parquet": other},
        branch="dev",
    )

    schema = _checks()["schema contract"]

    assert schema.state == "passed", schema.summary
    assert "holds in 2 declared tables" in schema.summary
    assert "New columns: data/train-1.parquet source." in schema.summary


def test_a_hugging_face_contract_fails_when_a_parquet_column_changes_type_or_goes(db, local_store, tmp_path):
    good = _parquet({"id": [1, 2], "text": ["a", "b"], "score": [0.5, 0.1], "label": [0, 1]})
    _with_card(tmp_path, {"data/train-0.parquet": good}, _card(HF_CONTRACT))
    # Parquet keeps its types: an int32 id is not the int64 declared.
    changed = _parquet({"id": pa.array([1, 2], pa.int32()), "text": ["a", "b"], "score": [0.5, 0.1]})
    push(tmp_path, "reviews", {"data/train-0.parquet": changed}, branch="dev")

    schema = _checks()["schema contract"]

    assert schema.state == "failed"
    assert "data/train-0.parquet column id is int32, declared int64" in schema.summary
    assert "data/train-0.parquet has no column label" in schema.summary


def test_a_declared_table_that_cannot_be_read_fails_in_one_sentence(db, local_store, tmp_path):
    _with_card(
        tmp_path,
        {"labels.parquet": _parquet({"id": [1]})},
        _card("schema:\n  labels.parquet:\n    id: int64\n"),
    )
    push(tmp_path, "reviews", {"labels.parquet": b"not a parquet file at all"}, branch="dev")

    checks = _checks()

    schema = checks["schema contract"]
    assert schema.state == "failed"
    # One sentence: the path and the first sentence of the reason.
    assert schema.summary.startswith(
        "The change breaks the schema contract on main: labels.parquet cannot be read as a table (Parquet"
    )
    assert schema.summary.endswith(").") and ". " not in schema.summary and "\n" not in schema.summary
    # The other checks still stand.
    assert checks["merge"].state == "passed"


def test_a_contract_the_card_cannot_state_fails_saying_so(db, local_store, tmp_path):
    _with_card(tmp_path, {"labels.csv": LABELS}, _card("schema: every column\n"))
    push(tmp_path, "reviews", {"labels.csv": LABELS + "3,emu,0.75\n"}, branch="dev")

    schema = _checks()["schema contract"]

    assert schema.state == "failed"
    assert schema.summary == (
        "The schema contract on main cannot be read: schema must map each table's path to its columns and types."
    )


# -- split leakage ----------------------------------------------------------------------


def test_a_split_with_identical_examples_across_splits_fails_naming_how_many(db, local_store, tmp_path):
    rows = "id,text,label\n" + "".join(f"{i},same words,pos\n" for i in range(20))
    base = _with_card(tmp_path, {"reviews.csv": rows}, _card())
    split_make(
        user=None, dataset=base.dataset, source=base, id_column="id", ratios="train=0.5,test=0.5",
        branch="dev", author="alice",
    )  # fmt: skip

    checks = _checks()

    leakage = checks["split leakage"]
    assert leakage.state == "failed"
    # Twenty rows with the same content under different ids: one group, split apart.
    assert leakage.summary.startswith(
        "20 identical examples (1 group) sit in more than one split of dev (1.1.0), for example ids "
    )
    assert " in test and " in leakage.summary
    assert leakage.summary.endswith(" in train; split again so that each group lands in one split.")
    assert leakage.metrics == {"leakage": 1.0, "leaked_examples": 20.0}


def test_a_split_without_leakage_passes(db, local_store, tmp_path):
    rows = "id,text,label\n" + "".join(f"{i},words {i},pos\n" for i in range(20))
    base = _with_card(tmp_path, {"reviews.csv": rows}, _card())
    split_make(
        user=None, dataset=base.dataset, source=base, id_column="id", ratios="train=0.5,test=0.5",
        branch="dev", author="alice",
    )  # fmt: skip

    leakage = _checks()["split leakage"]

    assert leakage.state == "passed"
    assert leakage.summary == "No example of dev (1.1.0) appears in more than one split."


# -- golden rule ------------------------------------------------------------------------


def test_a_golden_target_takes_a_change_whose_card_could_be_golden(db, local_store, tmp_path):
    head = _with_card(tmp_path, {"labels.csv": LABELS}, _card())
    version_mark_golden(user=None, version=head, author="alice")
    push(tmp_path, "reviews", {"labels.csv": LABELS + "3,emu,0.75\n"}, branch="dev")

    golden = _checks()["golden rule"]

    assert golden.state == "passed"
    assert golden.summary == "main (1.0.1) is golden, and dev (1.1.0) could be golden too."


def test_a_golden_target_with_an_incomplete_card_on_the_source_needs_approval(db, local_store, tmp_path):
    head = _with_card(tmp_path, {"labels.csv": LABELS}, _card())
    version_mark_golden(user=None, version=head, author="alice")
    push(tmp_path, "reviews", {"labels.csv": LABELS + "3,emu,0.75\n"}, branch="dev")
    card_import(user=None, dataset=head.dataset, text=THIN_CARD, branch="dev", author="alice")

    golden = _checks()["golden rule"]

    assert golden.state == "needs_approval"
    assert golden.summary.startswith("main (1.0.1) is golden, and dev (1.1.1) could not be: its card is ")
    assert "below the 80% golden needs (add a licence, the task categories, intended uses" in golden.summary
    assert golden.metrics["completeness"] < golden.metrics["golden_minimum"] == 80


def test_a_change_built_on_rolled_back_data_fails_the_golden_rule(db, local_store, tmp_path):
    base = push(tmp_path, "reviews", {"labels.csv": LABELS})
    _branch(base)
    push(tmp_path, "reviews", {"labels.csv": LABELS, "notes.txt": "main\n"})
    push(tmp_path, "reviews", {"labels.csv": LABELS + "3,emu,0.75\n"}, branch="dev")
    # As a rollback leaves it (governance.services.rollback); made directly here.
    Version.objects.filter(pk=base.pk).update(
        rolled_back=True, rolled_back_reason="labels leaked the test set"
    )

    golden = _checks()["golden rule"]

    assert golden.state == "failed"
    assert golden.summary == (
        "The change builds on rolled-back data: the merge base (the version the branches last shared)"
        " 1.0.0 was rolled back (labels leaked the test set)."
    )


# -- semantic version -------------------------------------------------------------------


def test_a_major_change_needs_approval_naming_its_reasons(db, local_store, tmp_path):
    base = push(tmp_path, "reviews", {"labels.csv": LABELS})
    _branch(base)
    push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n"}, branch="dev")

    semver = _checks()["semantic version"]

    assert semver.state == "needs_approval"
    assert semver.summary == (
        # 1.0.0 on main, 2.0.0 the push to dev: numbers are unique per dataset.
        "A major change (labels.csv: column score removed): the merge would make main 3.0.0."
        " A schema change needs an approver."
    )


# -- card completeness ------------------------------------------------------------------


def test_a_thin_card_into_a_labelled_target_fails_naming_what_is_missing(db, local_store, tmp_path):
    _with_card(tmp_path, {"labels.csv": LABELS}, THIN_CARD, stage="labelled")
    push(tmp_path, "reviews", {"labels.csv": LABELS + "3,emu,0.75\n"}, branch="dev")

    card = _checks()["card completeness"]

    assert card.state == "failed"
    assert card.summary.startswith("The card of dev (1.1.0) is ")
    assert "below the 60% main (labelled) needs: add a licence, the task categories, intended uses and" in (
        card.summary
    )
    assert card.metrics["minimum"] == CARD_MINIMUM_BY_STAGE["labelled"] == 60


def test_a_complete_card_into_a_split_target_passes(db, local_store, tmp_path):
    _with_card(tmp_path, {"labels.csv": LABELS}, _card(), stage="split")
    push(tmp_path, "reviews", {"labels.csv": LABELS + "3,emu,0.75\n"}, branch="dev")

    card = _checks()["card completeness"]

    assert card.state == "passed"
    assert card.summary == "The card of dev (1.1.0) is 100% complete; main (split) needs 80%."


# -- how types compare ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "found", "inferred", "holds"),
    [
        ("string", "string", False, True),
        ("string", "large_string", False, True),
        ("float64", "double", False, True),
        ("float32", "float", False, True),
        ("bool", "bool", False, True),
        ("int64", "int32", False, False),  # Parquet keeps its types
        ("int32", "int64", True, True),  # a CSV's types are inferred, as wide as they go
        ("float64", "int64", True, True),  # a float column whose first rows are whole
        ("int64", "null", True, True),  # no value in the first rows
        ("int64", "string", True, False),
        ("float64", "int64", False, False),
    ],
)
def test_declared_types_compare_with_the_types_read(declared, found, inferred, holds):
    assert type_holds(declared, found, inferred=inferred) is holds
