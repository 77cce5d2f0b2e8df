"""The merge page in Chromium: a steward dry-runs a merge of two relabelling
branches, sees the one conflicting cell named by key and column, settles it for
the source, merges, and finds the merge with its two parents in the history. A
second test follows a merge a real worker works out, the page polling its progress."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from catalog.models import Branch, Merge, Version
from catalog.services.refs import branch_create
from tests.factories.browser import screenshot, sign_in
from tests.factories.datasets import push
from tests.workers import CeleryWorker, worker_environment

pytestmark = pytest.mark.django_db(transaction=True)

LABELS = (
    "id,text,label\n1,a tabby on a sofa,cat\n2,a dog in the park,dog\n3,a fox at dusk,fox\n4,two owls,bird\n"
)


def _relabelled(tmp_path, personas) -> None:
    """'reviews' 1.0.0 on main; main relabels row 1 as lynx and adds row 5 (1.1.0);
    branch relabel makes row 1 puma, row 3 vixen, and adds a file (1.2.0)."""
    alice = personas["alice"]
    base = push(
        tmp_path,
        "reviews",
        {"labels.csv": LABELS, "README.md": "# Reviews\n"},
        user=alice,
        message="First cut",
    )
    branch_create(dataset=base.dataset, name="relabel", start=base, user=alice)
    main = LABELS.replace("sofa,cat", "sofa,lynx") + "5,a heron,bird\n"
    push(tmp_path, "reviews", {"labels.csv": main, "README.md": "# Reviews\n"}, user=alice, message="Lynx")
    relabel = LABELS.replace("sofa,cat", "sofa,puma").replace("dusk,fox", "dusk,vixen")
    push(
        tmp_path,
        "reviews",
        {"labels.csv": relabel, "README.md": "# Reviews\n", "guidelines.md": "Name the species.\n"},
        user=alice,
        branch="relabel",
        message="Species labels",
    )


def test_steward_dry_runs_settles_a_cell_conflict_and_merges(page, personas, tmp_path):
    _relabelled(tmp_path, personas)
    # A viewer may dry-run: without a key the table conflicts whole; no form to merge.
    sign_in(page, "bob")
    page.goto("/datasets/reviews/merge/?source=relabel")
    conflict = page.get_by_role("region", name="Conflicts in labels.csv")
    expect(conflict).to_contain_text("It is a table: give its key column on the merge form")
    expect(page.get_by_text("Only a steward of reviews can merge")).to_be_visible()
    expect(page.get_by_role("button", name="Merge", exact=True)).to_have_count(0)
    screenshot(page, "merge-viewer")
    page.context.clear_cookies()

    sign_in(page, "alice")
    page.goto("/datasets/reviews/")
    page.get_by_role("link", name="Merge…").click()

    # The form: relabel into main, with the key column for the table.
    expect(page.get_by_label("Merge branch")).to_have_value("relabel")
    expect(page.get_by_label("Into")).to_have_value("main")
    page.get_by_label("Key column").fill("id")
    screenshot(page, "merge-form")
    page.get_by_role("button", name="Dry run").click()

    # The dry run: one conflict, named by key and column, with the three values.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dry run: merge")
    expect(page.get_by_role("status")).to_contain_text("1 conflict")
    conflicts = page.get_by_role("region", name="Conflicts in labels.csv")
    row = conflicts.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text("1")
    expect(row.locator("td").nth(1)).to_have_text("label")
    for index, value in ((3, "cat"), (4, "lynx"), (5, "puma")):
        expect(row.locator("td").nth(index)).to_have_text(value)
    # The rest merges by row, and guidelines.md comes from relabel.
    tables = page.get_by_role("region", name="Tables merged row by row")
    expect(tables).to_contain_text("1 changed")  # vixen, from relabel
    expect(tables).to_contain_text("1 added")  # the heron, from main
    expect(page.get_by_role("region", name="Files to take from")).to_contain_text("guidelines.md")
    screenshot(page, "merge-dry-run")

    # Settle the cell for relabel, and merge.
    page.get_by_label("Strategy for labels.csv").select_option("source")
    page.get_by_label("Message").fill("Merge the species labels")
    screenshot(page, "merge-settle", full_page=False)
    page.get_by_role("button", name="Merge", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text("Merged as reviews@1.3.0")
    screenshot(page, "merge-done")
    merged = Version.objects.get(semver="1.3.0")
    assert (merged.parent.semver, merged.merge_parent.semver) == ("1.1.0", "1.2.0")
    assert Branch.objects.get(dataset__name="reviews", name="main").head == merged

    # The version page and the history name both parents.
    page.get_by_role("link", name="reviews@1.3.0").click()
    expect(page.locator(".facts")).to_contain_text("Merge of 1.1.0 and 1.2.0")
    screenshot(page, "merge-version", full_page=False)
    page.locator(".crumbs").get_by_role("link", name="reviews", exact=True).click()
    history = page.locator("table.history tbody tr").first
    expect(history).to_contain_text("Merge the species labels")
    expect(history).to_contain_text("Merge of 1.1.0 and 1.2.0")
    history.get_by_role("link", name="1.2.0").click()
    expect(page).to_have_url("/datasets/reviews/versions/1.2.0/")
    page.go_back()
    screenshot(page, "merge-history")


@pytest.mark.slow
def test_the_page_follows_a_merge_a_worker_works_out(page, personas, tmp_path, settings, queue, redis_url):
    _relabelled(tmp_path, personas)
    settings.STRATA_MERGE_INLINE_BYTES = 0  # every merge with a table goes to a worker
    env = worker_environment(
        settings=settings, tmp_path=tmp_path, queue=queue, redis_url=redis_url, STRATA_MERGE_INLINE_BYTES="0"
    )
    sign_in(page, "alice")
    page.goto("/datasets/reviews/merge/?source=relabel&key=id")
    expect(page.get_by_role("status")).to_contain_text("Queued")
    screenshot(page, "merge-queued")
    worker = CeleryWorker(env, tmp_path / "worker.log")
    try:
        # htmx polls the outcome every second until the worker is done.
        expect(page.get_by_role("status")).to_contain_text("1 conflict", timeout=60_000)
    finally:
        worker.stop()
    expect(page.get_by_label("Strategy for labels.csv")).to_be_visible()
    assert Merge.objects.get().state == Merge.State.CONFLICTS
