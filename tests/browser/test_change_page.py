"""A change request in Chromium, as a steward, an approver and a viewer live it:
alice protects main on the dataset page, pushes to a branch and opens a change
request; a real Celery worker checks it while the page follows; a CI system
reports a metric that regresses; carol reads the gate and approves; bob sees it
all but no button; alice merges, the page follows the worker, and the merged
version has two parents."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from catalog.models import Branch, Version
from catalog.services.refs import branch_create
from changes.models import ChangeRequest
from changes.services import requests
from registry.services.training import training_record
from tests.factories.browser import screenshot, sign_in
from tests.factories.datasets import push
from tests.workers import CeleryWorker, worker_environment

pytestmark = pytest.mark.django_db(transaction=True)

LABELS = "id,text,label\n1,a tabby on a sofa,cat\n2,a dog in the park,dog\n3,a fox at dusk,fox\n"


def _reviews(tmp_path, personas) -> None:
    """'reviews' on main with a card that declares its key column, a branch
    'relabel' from it, and a model trained on main."""
    from cards.services.cards import card_import

    alice = personas["alice"]
    base = push(tmp_path, "reviews", {"labels.csv": LABELS}, user=alice, message="First cut")
    base = card_import(
        user=alice, dataset=base.dataset, text="---\nkey_column: id\n---\n# Reviews\n\nPhotos, labelled.\n"
    )
    branch_create(dataset=base.dataset, name="relabel", start=base, user=alice)
    training_record(
        user=alice,
        model="sentiment",
        version="1.0",
        datasets={"train": "reviews@main"},
        metrics={"accuracy": 0.91, "f1": 0.88},
    )


@pytest.mark.slow
def test_steward_opens_approver_approves_viewer_reads_steward_merges(
    page, personas, settings, tmp_path, queue, redis_url
):
    _reviews(tmp_path, personas)
    env = worker_environment(settings=settings, tmp_path=tmp_path, queue=queue, redis_url=redis_url)
    worker = CeleryWorker(env, tmp_path / "worker.log")
    try:
        # alice protects main on the dataset page: one approval to merge.
        sign_in(page, "alice")
        page.goto("/datasets/reviews/")
        section = page.get_by_role("region", name="Protected branches")
        expect(section).to_contain_text("No branch is protected")
        section.get_by_text("Protect a branch…").click()
        expect(section.get_by_label("Branch or pattern")).to_have_value("main")
        # A semantic version is no branch name: said beside the form, nothing saved.
        section.get_by_label("Branch or pattern").fill("1.0.0")
        section.get_by_role("button", name="Protect").click()
        section = page.get_by_role("region", name="Protected branches")
        expect(section.get_by_role("alert")).to_contain_text("'1.0.0' is not a valid branch name")
        section.get_by_role("alert").scroll_into_view_if_needed()
        screenshot(page, "change-protect-refused", full_page=False)
        section.get_by_label("Branch or pattern").fill("main")
        section.get_by_label("Approvals to merge").fill("1")
        screenshot(page, "change-protect-form", full_page=False)
        section.get_by_role("button", name="Protect").click()
        expect(page.get_by_text("Saved the protection of main.")).to_be_visible()
        section = page.get_by_role("region", name="Protected branches")
        expect(section).to_contain_text("Changes only through change requests · 1 approval to merge")
        page.locator("#protected-branches").scroll_into_view_if_needed()
        screenshot(page, "change-protected", full_page=False)

        # She pushes the relabelling to its branch, and opens a change request.
        push(
            tmp_path,
            "reviews",
            {"labels.csv": LABELS.replace("dusk,fox", "dusk,vixen")},
            user=personas["alice"],
            branch="relabel",
            message="Name the vixen",
        )
        page.get_by_role("link", name="Change requests (0 open)").click()
        expect(page.get_by_label("Merge branch")).to_have_value("relabel")
        expect(page.get_by_label("Into")).to_have_value("main")
        page.get_by_label("Title").fill("Name the vixen")
        page.get_by_label("Description").fill("Row 3 is a vixen, not a fox: the labelling guide says so.")
        page.get_by_label("Code repository").fill("https://git.example.org/vision/labelling")
        page.get_by_label("Commit or branch").fill("3f2c9e1")
        screenshot(page, "change-open-form")
        page.get_by_role("button", name="Open change request").click()

        # The page follows the worker until the checks are in.
        expect(page.get_by_role("heading", level=1)).to_contain_text("Name the vixen")
        checks = page.get_by_role("region", name="Checks")
        expect(checks.locator("table.checks")).to_contain_text("schema contract", timeout=60_000)
        expect(checks.locator("tbody tr")).to_have_count(6)
        expect(checks.locator("tbody tr").filter(has_text="merge").first).to_contain_text("passed")
        standing = page.get_by_role("region", name="What it waits for")
        expect(standing).to_contain_text("It needs 1 approval on this head, and has 0.")
        dry_run = page.get_by_role("region", name="What it changes")
        expect(dry_run).to_contain_text("Clean:")
        expect(dry_run).to_contain_text("labels.csv")
        models = page.get_by_role("region", name="Models trained on reviews")
        expect(models.get_by_role("link", name="sentiment@1.0")).to_be_visible()
        screenshot(page, "change-checked")

        # CI reports what it measured on the head: accuracy regresses beyond tolerance.
        change = ChangeRequest.objects.get()
        requests.check_report(
            user=personas["alice"],
            change=change,
            name="train-and-evaluate",
            state="passed",
            summary="Trained on the change's head; evaluated on the held-out split.",
            metrics={"accuracy": 0.86, "f1": 0.87},
            url="https://ci.example.org/vision/runs/412",
            head=change.head_id,
        )
        page.context.clear_cookies()

        # carol reads the gate, with both numbers side by side, and approves.
        sign_in(page, "carol")
        page.goto(f"/changes/{change.pk}/")
        gate = page.get_by_role("region", name="Metric gate")
        regressed = gate.locator("tbody tr").filter(has_text="accuracy")
        expect(regressed.locator("td").nth(2)).to_have_text("0.91")
        expect(regressed.locator("td").nth(3)).to_have_text("0.86")
        expect(regressed).to_contain_text("regressed")
        expect(page.get_by_role("button", name="Merge into main")).to_have_count(0)
        page.get_by_label("Comment").fill("The drop is the fox class shrinking; the guide is right.")
        screenshot(page, "change-approver")
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text("You approved this head.")).to_be_visible()
        expect(page.get_by_role("region", name="Ready to merge")).to_be_visible()
        page.context.clear_cookies()

        # bob, a viewer, sees all of it and no button.
        sign_in(page, "bob")
        page.goto(f"/changes/{change.pk}/")
        expect(page.get_by_role("region", name="Approvals")).to_contain_text("carol approved relabel")
        expect(page.get_by_role("region", name="Ready to merge")).to_contain_text(
            "A steward of reviews merges it."
        )
        expect(page.locator("main button")).to_have_count(0)
        screenshot(page, "change-viewer")
        page.context.clear_cookies()

        # alice merges; the page follows the worker until the merge is made.
        sign_in(page, "alice")
        page.goto(f"/changes/{change.pk}/")
        page.get_by_role("button", name="Merge into main").click()
        merged_box = page.get_by_role("region", name="Merged", exact=True)
        expect(merged_box).to_contain_text("Merged as reviews@", timeout=60_000)
        screenshot(page, "change-merged")
    finally:
        worker.stop()

    change.refresh_from_db()
    merged = Version.objects.select_related("parent", "merge_parent").get(pk=change.merged_version_id)
    assert Branch.objects.get(dataset__name="reviews", name="main").head_id == merged.id
    assert (merged.parent_id, merged.merge_parent_id) == (change.target_head_id, change.head_id)
    expect(merged_box).to_contain_text(
        f"two parents, {merged.parent.semver} (main) and {merged.merge_parent.semver} (relabel)"
    )
    merged_box.get_by_role("link", name=f"reviews@{merged.semver}").click()
    expect(page.locator(".facts")).to_contain_text(
        f"Merge of {merged.parent.semver} and {merged.merge_parent.semver}"
    )
    screenshot(page, "change-merged-version", full_page=False)
    page.goto("/datasets/reviews/changes/")
    row = page.locator("table.changes tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("merged")
    expect(row.get_by_role("link", name=f"as {merged.semver}")).to_be_visible()
    screenshot(page, "change-list", full_page=False)
