"""Change requests (changes.services): protection, checks, approvals, the metric
gate and the merge, on PostgreSQL in CI, with the worker's task bodies called
where a worker would run them (tests/changes/test_live.py runs a real worker)."""

from __future__ import annotations

import pytest

from catalog.errors import ConflictError, Forbidden, UserError
from catalog.models import Branch
from catalog.services.refs import branch_create
from changes.models import ChangeRequest, Check
from changes.services import requests
from changes.services.protection import protection_set
from registry.services.training import training_record
from tests.factories.datasets import push

CARD = """---
key_column: id
schema:
  labels.csv:
    id: int64
    label: string
---
# Reviews

## Dataset Description

Product reviews with a sentiment label.
"""


@pytest.fixture
def reviews(db, local_store, tmp_path, personas):
    """'reviews' (its card declares the key column) with main protected (one
    approval) and a branch 'relabel' that changes one label."""
    from cards.services.cards import card_import

    alice = personas["alice"]
    base = push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n"}, user=alice)
    base = card_import(user=alice, dataset=base.dataset, text="---\nkey_column: id\n---\n# Reviews\n")
    protection_set(user=alice, dataset=base.dataset, pattern="main", required_approvals=1)
    branch_create(dataset=base.dataset, name="relabel", start=base, user=alice)
    push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,wolf\n"}, user=alice, branch="relabel")
    return base.dataset


def _head(dataset, branch):
    return Branch.objects.select_related("head").get(dataset=dataset, name=branch).head


def _opened(personas, **options):
    change = requests.change_open(user=personas["alice"], dataset_name="reviews", source="relabel", **options)
    requests.change_check(change.pk)  # what the worker does once the request is committed
    change.refresh_from_db()
    return change


def test_a_protected_branch_refuses_a_direct_push_in_one_sentence(reviews, tmp_path, personas):
    with pytest.raises(Forbidden) as refused:
        push(tmp_path, "reviews", {"labels.csv": "id,label\n1,x\n"}, user=personas["alice"])
    assert str(refused.value) == (
        "branch main of reviews is protected: push to another branch and propose it in a change request"
        " (strata change open reviews BRANCH --into main)."
    )
    from catalog.services.merges import merge_branches

    with pytest.raises(Forbidden, match="is protected"):
        merge_branches(user=personas["alice"], dataset_name="reviews", source="relabel")


def test_a_change_request_checks_its_head_and_merges_once_approved(reviews, personas):
    change = _opened(personas, title="Relabel the wolves")
    standing = requests.change_standing(change)
    names = {check.name: check.state for check in standing.checks}
    assert names["merge"] == "passed" and names["schema contract"] in ("passed",)
    assert standing.blockers == ["it needs 1 approval on this head, and has 0."]

    with pytest.raises(Forbidden, match="author of a change request cannot approve"):
        requests.change_approve(user=personas["alice"], change=change)
    with pytest.raises(Forbidden, match="approver role"):
        requests.change_approve(user=personas["bob"], change=change)
    requests.change_approve(user=personas["carol"], change=change, comment="labels checked")
    assert requests.change_standing(change).mergeable

    requests.change_merge(user=personas["alice"], change=change)
    requests.change_merge_run(change.pk, "alice")  # the worker

    change.refresh_from_db()
    assert change.state == ChangeRequest.State.MERGED
    merged = _head(reviews, "main")
    assert change.merged_version_id == merged.id
    assert merged.merge_parent_id == change.head_id and merged.message.startswith("Merge change request #")


def test_a_failing_schema_check_blocks_the_merge(db, local_store, tmp_path, personas):
    from cards.services.cards import card_import

    alice = personas["alice"]
    base = push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n"}, user=alice)
    base = card_import(user=alice, dataset=base.dataset, text=CARD)
    branch_create(dataset=base.dataset, name="relabel", start=base, user=alice)
    push(tmp_path, "reviews", {"labels.csv": "id,tag\n1,cat\n"}, user=alice, branch="relabel")

    change = _opened(personas)

    schema = Check.objects.get(change=change, name="schema contract")
    assert schema.state == "failed" and "label" in schema.summary
    with pytest.raises(ConflictError, match="cannot merge yet: check schema contract failed"):
        requests.change_merge(user=alice, change=change)


def test_a_new_push_to_the_source_reruns_checks_and_drops_stale_approvals(reviews, tmp_path, personas):
    change = _opened(personas)
    requests.change_approve(user=personas["carol"], change=change)
    assert requests.change_standing(change).mergeable

    push(
        tmp_path,
        "reviews",
        {"labels.csv": "id,label\n1,lynx\n2,wolf\n"},
        user=personas["alice"],
        branch="relabel",
    )
    assert "a branch moved since its checks ran" in requests.change_standing(change).blockers[0]
    requests.change_check(change.pk)
    change.refresh_from_db()

    standing = requests.change_standing(change)
    assert change.head_id == _head(reviews, "relabel").id
    assert standing.approvals == [] and standing.stale_approvals == 1
    assert standing.blockers == ["it needs 1 approval on this head, and has 0."]


def test_a_regression_reported_by_ci_needs_an_approver_or_blocks(reviews, personas):
    alice = personas["alice"]
    training_record(
        user=alice,
        model="sentiment",
        version="1.0",
        datasets={"train": "reviews@main"},
        metrics={"accuracy": 0.90},
    )
    change = _opened(personas)
    requests.check_report(
        user=alice, change=change, name="train-and-evaluate", state="passed", metrics={"accuracy": 0.80},
        head=change.head_id[:12],
    )  # fmt: skip

    gate = Check.objects.get(change=change, head=change.head, name="metric gate")
    assert gate.state == "needs_approval"
    assert "sentiment@1.0 accuracy 0.9 → 0.8" in gate.summary

    protection_set(user=alice, dataset=reviews, pattern="main", required_approvals=1, regression="block")
    requests.check_report(
        user=alice, change=change, name="train-and-evaluate", state="passed", metrics={"accuracy": 0.80}
    )
    assert Check.objects.get(change=change, head=change.head, name="metric gate").state == "failed"


def test_a_check_about_an_older_head_is_refused(reviews, tmp_path, personas):
    change = _opened(personas)
    old_head = change.head_id
    push(
        tmp_path,
        "reviews",
        {"labels.csv": "id,label\n1,emu\n2,wolf\n"},
        user=personas["alice"],
        branch="relabel",
    )
    with pytest.raises(ConflictError, match="run it again on the new head"):
        requests.check_report(user=personas["alice"], change=change, name="ci", state="passed", head=old_head)
    with pytest.raises(UserError, match="built-in check"):
        requests.check_report(user=personas["alice"], change=change, name="merge", state="passed")


def test_two_requests_into_one_branch_the_second_rechecks_after_the_first_merges(reviews, tmp_path, personas):
    alice, carol = personas["alice"], personas["carol"]
    first = _opened(personas)
    branch_create(dataset=reviews, name="extra", start=_head(reviews, "main"), user=alice)
    push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n3,emu\n"}, user=alice, branch="extra")
    second = requests.change_open(user=alice, dataset_name="reviews", source="extra")
    requests.change_check(second.pk)
    second.refresh_from_db()
    for change in (first, second):
        requests.change_approve(user=carol, change=change)

    requests.change_merge(user=alice, change=first)
    requests.change_merge_run(first.pk, "alice")

    assert "a branch moved since its checks ran" in requests.change_standing(second).blockers[0]
    with pytest.raises(ConflictError, match="cannot merge yet"):
        requests.change_merge(user=alice, change=second)
    requests.change_check(second.pk)
    second.refresh_from_db()
    assert requests.change_standing(second).mergeable  # approvals are of the source head, still the same
    requests.change_merge(user=alice, change=second)
    requests.change_merge_run(second.pk, "alice")
    merged = _head(reviews, "main")
    from catalog.selectors.exports import file_stream

    assert b"".join(file_stream(merged, "labels.csv").chunks) == b"id,label\n1,cat\n2,wolf\n3,emu\n"


def test_only_stewards_open_and_close_and_a_closed_request_cannot_merge(reviews, personas):
    with pytest.raises(Forbidden):
        requests.change_open(user=personas["bob"], dataset_name="reviews", source="relabel")
    change = _opened(personas)
    with pytest.raises(UserError, match="already proposes"):
        requests.change_open(user=personas["alice"], dataset_name="reviews", source="relabel")
    requests.change_close(user=personas["alice"], change=change)
    with pytest.raises(ConflictError, match="cannot merge yet: the change request is closed"):
        requests.change_merge(user=personas["alice"], change=change)


def test_people_hear_of_a_request_a_failed_check_an_approval_and_the_merge(
    reviews, personas, mailoutbox, django_capture_on_commit_callbacks
):
    """Mail goes to Django's in-memory outbox: delivery itself cannot run here."""
    with django_capture_on_commit_callbacks(execute=True):
        change = _opened(personas, title="Wolves")
        requests.check_report(
            user=personas["alice"], change=change, name="ci", state="failed", summary="bad F1"
        )
        requests.check_report(user=personas["alice"], change=change, name="ci", state="passed")
        requests.change_approve(user=personas["carol"], change=change, comment="fine")
        requests.change_merge(user=personas["alice"], change=change)
        requests.change_merge_run(change.pk, "alice")
    subjects = [message.subject for message in mailoutbox]
    assert subjects == [
        f"[Strata] change request #{change.pk} opened: Wolves",
        f"[Strata] change request #{change.pk} check failed: Wolves",
        f"[Strata] change request #{change.pk} approved: Wolves",
        f"[Strata] change request #{change.pk} merged: Wolves",
    ]
    assert "ci: bad F1" in mailoutbox[1].body
    people = {personas[name].email for name in ("alice", "carol", "erin")}
    assert set(mailoutbox[0].to) == people


def test_the_default_branch_of_a_golden_dataset_is_protected_until_a_rule_says_otherwise(
    db, local_store, tmp_path, personas
):
    from catalog.models import Version

    alice = personas["alice"]
    first = push(tmp_path, "digits", {"a.csv": "id\n1\n"}, user=alice)
    Version.objects.filter(pk=first.pk).update(golden=True)  # as version_mark_golden leaves it
    with pytest.raises(Forbidden, match="branch main of digits is protected"):
        push(tmp_path, "digits", {"a.csv": "id\n2\n"}, user=alice)
    protection_set(
        user=alice, dataset=first.dataset, pattern="main", refuse_direct=False, required_approvals=0
    )
    assert push(tmp_path, "digits", {"a.csv": "id\n2\n"}, user=alice).parent_id == first.id


def test_a_closed_request_leaves_its_branch_to_expire_as_an_experiment(reviews, personas):
    from django.utils import timezone

    from lifecycle.services.retention import retention_facts

    change = _opened(personas)
    head = change.head_id

    def branches() -> frozenset[str]:
        facts = retention_facts(now=timezone.now())
        return next(v.branches for v in facts.versions if v.id == head)

    assert branches() == frozenset({"reviews:relabel"})
    requests.change_close(user=personas["alice"], change=change)
    assert branches() == frozenset({"reviews:exp/relabel"})  # the exp/* policy: 30 days after its last commit


def test_versions_merged_into_a_branch_are_kept_with_its_history(reviews, personas):
    from django.utils import timezone

    from catalog.services.refs import branch_delete
    from lifecycle.services.retention import retention_facts

    change = _opened(personas)
    requests.change_approve(user=personas["carol"], change=change)
    requests.change_merge(user=personas["alice"], change=change)
    requests.change_merge_run(change.pk, "alice")
    branch_delete(dataset=reviews, name="relabel", user=personas["alice"])

    facts = retention_facts(now=timezone.now())
    assert next(v.branches for v in facts.versions if v.id == change.head_id) == frozenset({"reviews:main"})
