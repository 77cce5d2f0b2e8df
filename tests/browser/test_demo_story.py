"""The demo as a new user meets it: the approver finds why digit-classifier 1.1
got worse (a label shift in the data it was trained on) and approves the
rollback waiting for them, which a real Celery worker on Redis carries out."""

from __future__ import annotations

import pytest

from catalog.models import Branch
from governance.models import RollbackRequest
from ops.demo import MODEL, demo_build
from tests.factories.browser import screenshot
from tests.workers import CeleryWorker, worker_environment


@pytest.mark.slow
def test_approver_sees_the_label_shift_and_approves_the_rollback(page, settings, tmp_path, queue, redis_url):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    demo = demo_build(password_file=tmp_path / "demo-passwords.txt")
    env = worker_environment(
        settings=settings,
        tmp_path=tmp_path,
        queue=queue,
        redis_url=redis_url,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    worker = CeleryWorker(env, tmp_path / "worker.log")
    try:
        page.goto("/accounts/login/")
        page.get_by_label("User name").fill("approver")
        page.get_by_label("Password").fill(demo.users["approver"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")
        screenshot(page, "demo-catalog")

        # Models → digit-classifier 1.1, flagged, and its comparison with 1.0.
        page.get_by_role("link", name="Models", exact=True).click()
        page.get_by_role("link", name=MODEL).first.click()
        page.get_by_role("link", name="1.1", exact=True).first.click()
        assert "Metric regression" in page.content()
        page.get_by_role("link", name="Compare with 1.0").click()
        page.get_by_role("heading", name="What changed in the data").wait_for()
        screenshot(page, "demo-model-compare")
        shift = page.locator("div.label-shift", has_text="Label shift in labels.csv").first
        assert "shifted" in shift.locator("h4").inner_text()
        rows = {
            cells[0]: cells[1:4]
            for cells in (row.locator("td, th").all_inner_texts() for row in shift.locator("tbody tr").all())
        }
        # Vendor B read 1 as 7: fewer 1s, more 7s, in what 1.1 was trained on.
        assert int(rows["1"][1]) < int(rows["1"][0]) and int(rows["7"][1]) > int(rows["7"][0])
        accuracy = page.locator("tr", has_text="accuracy").first.inner_text()
        assert "regression" in accuracy

        # Rollbacks → the steward's request → approve; the page follows the worker.
        page.get_by_role("link", name="Rollbacks", exact=True).click()
        page.get_by_role("link", name="digits").first.click()
        assert "Vendor B" in page.content()
        page.get_by_label("Comment").fill("Confirmed: batch 2 goes back to vendor A for re-annotation")
        page.get_by_role("button", name="Approve rollback").click()
        page.get_by_role("status").filter(has_text="Done").wait_for(timeout=90_000)
        screenshot(page, "demo-rollback-done")
    finally:
        worker.stop()
    rollback = RollbackRequest.objects.get(pk=demo.rollback_id)
    assert rollback.state == RollbackRequest.State.DONE
    head = Branch.objects.get(dataset__name="digits", name="main").head
    assert head == rollback.result and head.tree_id == rollback.target.tree_id
