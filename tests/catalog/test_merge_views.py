"""The merge pages, through the Django test client: a dry run as a viewer sees
it, a steward settling a conflict and merging, bad input answered in one sentence,
a queued merge followed by htmx, and the page's query count."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog.models import Branch, Merge, Version
from catalog.services.merges import merge_run
from catalog.services.refs import branch_create
from tests.factories.datasets import push

pytestmark = pytest.mark.django_db

# The session, the user and the user's roles (read once a request, the steward
# check included), the dataset, the merge with its versions, and the heads
# of its two branches: whatever the size of the outcome, which is one JSON column.
MERGE_PAGE_QUERIES = 6


@pytest.fixture(autouse=True)
def fresh_cache():
    """The catalog caches per user id; ids repeat between tests."""
    from django.core.cache import cache

    cache.clear()


def _labels(label: str, rows: int) -> str:
    return "id,label\n" + "".join(f"{i},{label}\n" for i in range(1, rows + 1))


def relabelled(tmp_path, personas, conflicts: int = 1) -> None:
    """'reviews' at 1.0.0 on main, then the same labels changed differently on main
    (1.1.0) and on branch relabel (1.2.0), which also adds a file: `conflicts` cells
    of labels.csv in conflict, keyed by id."""
    alice = personas["alice"]
    base = push(
        tmp_path, "reviews", {"labels.csv": _labels("cat", conflicts), "notes.txt": "v1\n"}, user=alice
    )
    branch_create(dataset=base.dataset, name="relabel", start=base, user=alice)
    push(tmp_path, "reviews", {"labels.csv": _labels("lynx", conflicts), "notes.txt": "v1\n"}, user=alice)
    push(
        tmp_path,
        "reviews",
        {"labels.csv": _labels("puma", conflicts), "notes.txt": "v1\n", "sources.txt": "zoo\n"},
        user=alice,
        branch="relabel",
    )


def _dry_run(client, **query: str):
    """Ask for a dry run from the merge form and follow it to the merge's page."""
    response = client.get(reverse("catalog:merge_new", args=["reviews"]), query)
    assert response.status_code == 302, response.content[:2000]
    return response.url, client.get(response.url)


def test_a_viewer_sees_the_dry_run_with_its_conflict_by_key_and_column_and_no_form(
    client, personas, local_store, tmp_path
):
    relabelled(tmp_path, personas)
    client.force_login(personas["bob"])

    url, response = _dry_run(client, source="relabel", key="id")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Dry run: merge" in page and "1.2.0" in page and "1.1.0" in page and "1.0.0" in page
    assert "1 conflict</strong>" in page
    # The conflict by key and column, with the three values.
    assert "<code>1</code>" in page and "<code>label</code>" in page
    assert "changed on both sides" in page
    for value in ("cat", "lynx", "puma"):
        assert f">{value}</td>" in page
    # What the merge would take from the source.
    assert "sources.txt" in page and "added" in page
    # A viewer may look, not merge.
    assert 'name="action"' not in page and "Only a steward of reviews can merge" in page
    merge = Merge.objects.get()
    assert merge.dry_run and merge.state == Merge.State.CONFLICTS and merge.version is None
    assert Branch.objects.get(name="main").head.semver == "1.1.0"


def test_without_a_key_the_table_conflicts_whole_and_the_page_asks_for_one(
    client, personas, local_store, tmp_path
):
    relabelled(tmp_path, personas)
    client.force_login(personas["alice"])

    _, response = _dry_run(client, source="relabel")

    page = response.content.decode()
    assert "changed on both sides" in page
    assert "It is a table: give its key column below to merge it row by row" in page
    assert 'name="key"' in page


def test_a_steward_settles_the_conflict_for_the_source_and_merges(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["alice"])
    url, response = _dry_run(client, source="relabel", key="id")
    page = response.content.decode()
    assert 'name="action" value="merge"' in page and 'aria-label="Strategy for labels.csv"' in page

    response = client.post(
        url,
        {
            "strategy": "",
            "conflict_path": ["labels.csv"],
            "path_strategy": ["source"],
            "key": "id",
            "message": "Take the zoo's labels",
            "action": "merge",
        },
    )

    assert response.status_code == 302 and response.url != url
    page = client.get(response.url).content.decode()
    merged = Version.objects.get(semver="1.3.0")
    assert (merged.parent.semver, merged.merge_parent.semver) == ("1.1.0", "1.2.0")
    assert merged.message == "Take the zoo's labels"
    assert "Merged</strong> as" in page
    assert reverse("catalog:version_detail", args=["reviews", "1.3.0"]) in page
    assert 'name="action"' not in page  # merged: nothing more to do here
    assert Branch.objects.get(name="main").head == merged

    # The history and the version page name both parents, linked.
    history = client.get(reverse("catalog:dataset_detail", args=["reviews"])).content.decode()
    parents = (
        f'Merge of <a href="{reverse("catalog:version_detail", args=["reviews", "1.1.0"])}">1.1.0</a>'
        f' and <a href="{reverse("catalog:version_detail", args=["reviews", "1.2.0"])}">1.2.0</a>'
    )
    assert parents in history
    assert (
        parents in client.get(reverse("catalog:version_detail", args=["reviews", "1.3.0"])).content.decode()
    )


def test_a_merge_left_with_conflicts_writes_nothing_and_offers_the_form_again(
    client, personas, local_store, tmp_path
):
    relabelled(tmp_path, personas)
    client.force_login(personas["alice"])
    url, _ = _dry_run(client, source="relabel", key="id")

    response = client.post(url, {"key": "id", "action": "merge"}, follow=True)

    page = response.content.decode()
    assert "nothing was merged" in page and 'name="action" value="merge"' in page
    assert Merge.objects.filter(dry_run=False, state=Merge.State.CONFLICTS).count() == 1
    assert not Version.objects.filter(merge_parent__isnull=False).exists()


def test_dry_run_again_keeps_the_choices_and_shows_the_clean_outcome(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["alice"])
    url, _ = _dry_run(client, source="relabel", key="id")

    response = client.post(url, {"strategy": "target", "key": "id", "action": "dry_run"}, follow=True)

    page = response.content.decode()
    assert "Clean:</strong> no conflicts" in page and "This dry run wrote nothing" in page
    assert 'name="strategy" value="target" checked' in page and 'value="id"' in page
    assert Merge.objects.filter(dry_run=True).count() == 2
    assert Branch.objects.get(name="main").head.semver == "1.1.0"


def test_the_dataset_page_offers_a_merge_only_with_two_branches(client, personas, local_store, tmp_path):
    client.force_login(personas["bob"])
    base = push(tmp_path, "reviews", {"labels.csv": _labels("cat", 1)}, user=personas["alice"])
    url = reverse("catalog:dataset_detail", args=["reviews"])
    assert "Merge…" not in client.get(url).content.decode()
    branch_create(dataset=base.dataset, name="relabel", start=base, user=personas["alice"])
    assert reverse("catalog:merge_new", args=["reviews"]) in client.get(url).content.decode()


def test_the_merge_form_offers_the_branches(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["bob"])
    page = client.get(reverse("catalog:merge_new", args=["reviews"])).content.decode()
    assert '<option value="relabel" selected>' in page and '<option value="main" selected>' in page


# -- bad input ---------------------------------------------------------------------------------


def test_an_unknown_branch_is_one_sentence_beside_the_form(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["bob"])
    response = client.get(reverse("catalog:merge_new", args=["reviews"]), {"source": "nope"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Dataset reviews has no branch nope." in page or "reviews has no branch nope." in page
    assert 'name="source"' in page
    assert not Merge.objects.exists()


def test_merging_a_branch_into_itself_is_refused(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["bob"])
    response = client.get(reverse("catalog:merge_new", args=["reviews"]), {"source": "main", "into": "main"})
    assert response.status_code == 400
    assert "Cannot merge branch main into itself" in response.content.decode()


def test_a_bad_strategy_is_one_sentence_on_the_merge_page(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["alice"])
    url, _ = _dry_run(client, source="relabel", key="id")

    response = client.post(url, {"strategy": "both", "key": "id", "action": "merge"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "&#x27;both&#x27; is not a merge strategy: use source or target." in page
    assert 'value="id"' in page  # what was typed is kept
    assert Merge.objects.count() == 1


def test_a_viewer_who_posts_a_merge_is_refused_and_nothing_is_written(
    client, personas, local_store, tmp_path
):
    relabelled(tmp_path, personas)
    client.force_login(personas["bob"])
    url, _ = _dry_run(client, source="relabel", key="id")
    response = client.post(url, {"strategy": "source", "key": "id", "action": "merge"})
    assert response.status_code == 403
    assert Merge.objects.count() == 1 and Branch.objects.get(name="main").head.semver == "1.1.0"


def test_an_unknown_merge_is_a_404(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["bob"])
    response = client.get(reverse("catalog:merge_detail", args=["reviews", "0" * 32]))
    assert response.status_code == 404


def test_a_merge_of_a_hidden_dataset_answers_like_a_missing_one(client, personas, local_store, tmp_path):
    from catalog.models import Dataset

    relabelled(tmp_path, personas)
    client.force_login(personas["alice"])
    url, _ = _dry_run(client, source="relabel", key="id")
    Dataset.objects.filter(name="reviews").update(visibility="restricted")
    client.force_login(personas["dave"])
    assert client.get(url).status_code == 404


# -- a merge a worker works out ------------------------------------------------------------------


def test_a_queued_merge_polls_its_progress_until_the_worker_is_done(
    client, personas, local_store, tmp_path, settings
):
    relabelled(tmp_path, personas)
    settings.STRATA_MERGE_INLINE_BYTES = 0  # every merge with a table goes to a worker
    client.force_login(personas["alice"])
    url, response = _dry_run(client, source="relabel", key="id")
    merge = Merge.objects.get()
    assert merge.state == Merge.State.QUEUED
    page = response.content.decode()
    assert 'hx-trigger="every 1s"' in page and "<progress" in page and "Queued:" in page

    Merge.objects.filter(id=merge.id).update(state=Merge.State.RUNNING, progress=0.4)
    partial = client.get(url, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    assert "40%" in partial.content.decode() and 'hx-trigger="every 1s"' in partial.content.decode()

    Merge.objects.filter(id=merge.id).update(state=Merge.State.QUEUED, progress=0)
    merge_run(merge.id)  # what the worker's task does

    done = client.get(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx stops polling
    text = done.content.decode()
    assert "hx-trigger" not in text and "1 conflict</strong>" in text and ">puma</td>" in text


def test_a_failed_merge_shows_its_sentence(client, personas, local_store, tmp_path):
    relabelled(tmp_path, personas)
    client.force_login(personas["alice"])
    url, _ = _dry_run(client, source="relabel", key="id")
    Merge.objects.update(
        state=Merge.State.FAILED, error="branch main of reviews moved since the merge was asked for."
    )
    page = client.get(url).content.decode()
    assert "Branch main of reviews moved since the merge was asked for. Nothing was merged." in page


# -- query count ------------------------------------------------------------------------------


@pytest.mark.parametrize("conflicts", [1, 30])
def test_the_merge_page_query_count_does_not_grow_with_its_conflicts(
    client, personas, local_store, tmp_path, conflicts
):
    relabelled(tmp_path, personas, conflicts=conflicts)
    client.force_login(personas["alice"])
    url, response = _dry_run(client, source="relabel", key="id")
    assert response.content.decode().count("<td>changed on both sides</td>") == conflicts
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    assert len(captured) == MERGE_PAGE_QUERIES, [q["sql"] for q in captured]
