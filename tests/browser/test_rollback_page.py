"""A steward asks for a rollback, an approver approves, and the page follows the
worker (a real Celery worker on Redis) until it says done."""

from __future__ import annotations

import pytest

from catalog.models import Branch
from catalog.services.versions import version_push
from governance.models import RollbackRequest
from tests.factories.browser import screenshot, sign_in
from tests.workers import CeleryWorker, worker_environment


@pytest.mark.slow
def test_steward_requests_approver_approves_page_shows_done(
    page, personas, settings, tmp_path, queue, redis_url
):
    data = tmp_path / "data"
    data.mkdir()
    for text in ("good", "bad"):
        (data / "labels.csv").write_text(f"id,label\n1,{text}\n")
        version_push(path=str(data), dataset_name="reviews", user=personas["alice"], message=text)
    env = worker_environment(settings=settings, tmp_path=tmp_path, queue=queue, redis_url=redis_url)
    worker = CeleryWorker(env, tmp_path / "worker.log")
    try:
        sign_in(page, "alice")
        page.goto("/datasets/reviews/rollback/?target=1.0.0")
        page.get_by_label("Why roll back?").fill("1.1.0 flipped the labels")
        screenshot(page, "rollback-request-form")
        page.get_by_role("button", name="Ask for approval").click()
        page.get_by_text("Waiting for an approver").wait_for()
        request_url = page.url

        page.context.clear_cookies()
        sign_in(page, "carol")
        page.goto(request_url)
        page.get_by_label("Comment").fill("confirmed with the labelling team")
        screenshot(page, "rollback-approve")
        page.get_by_role("button", name="Approve rollback").click()
        # htmx polls the status every 2 s until the worker is done.
        page.get_by_role("status").filter(has_text="Done").wait_for(timeout=60_000)
        screenshot(page, "rollback-done")
        assert "now holds the files of 1.0.0" in page.content()
    finally:
        worker.stop()
    rollback = RollbackRequest.objects.get()
    assert rollback.state == RollbackRequest.State.DONE
    assert Branch.objects.get(name="main").head == rollback.result
