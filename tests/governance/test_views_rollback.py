"""Rollback pages and the admin action: who may ask, who may decide, and the live
status partial that stops polling when the rollback is finished."""

from __future__ import annotations

import pytest

from catalog.services.versions import version_push
from governance.models import RollbackRequest
from governance.services.rollback import rollback_reject, rollback_request


@pytest.fixture
def reviews(personas, settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    data = tmp_path / "data"
    data.mkdir()
    for text in ("good", "bad"):
        (data / "labels.csv").write_text(f"id,label\n1,{text}\n")
        version_push(path=str(data), dataset_name="reviews", user=personas["alice"], message=text)


def _client(client, personas, name):
    client.force_login(personas[name])
    return client


@pytest.mark.parametrize("name, allowed", [("alice", True), ("erin", True), ("bob", False), ("carol", False)])
def test_only_stewards_ask_for_a_rollback(client, personas, reviews, name, allowed):
    c = _client(client, personas, name)
    page = c.get("/datasets/reviews/rollback/?target=1.0.0")
    assert page.status_code == 200 and b"1 modified" in page.content
    response = c.post("/datasets/reviews/rollback/", {"target": "1.0.0", "reason": "labels flipped"})
    if allowed:
        assert response.status_code == 302
        assert RollbackRequest.objects.get().requester_name == name
    else:
        assert response.status_code == 403
        assert not RollbackRequest.objects.exists()


def test_a_missing_reason_is_a_message_on_the_page(client, personas, reviews):
    response = _client(client, personas, "alice").post("/datasets/reviews/rollback/", {"target": "1.0.0"})
    assert response.status_code == 400 and b"a reason is required" in response.content
    assert not RollbackRequest.objects.exists()


def _asked(personas, by="alice"):
    from catalog.models import Version

    target = Version.objects.get(semver="1.0.0")
    return rollback_request(
        user=personas[by], dataset=target.dataset, branch="main", target=target, reason="bad"
    )


@pytest.mark.parametrize(
    "name, decision, outcome",
    [
        ("carol", "approve", "approved"),
        ("carol", "reject", "rejected"),
        ("alice", "approve", "requested"),  # the requester, and no approver role
        ("bob", "reject", "requested"),
        ("erin", "approve", "approved"),  # an admin who did not ask
    ],
)
def test_deciding_needs_the_approver_role(
    client, personas, reviews, name, decision, outcome, django_capture_on_commit_callbacks
):
    request = _asked(personas)
    c = _client(client, personas, name)
    with django_capture_on_commit_callbacks(execute=False):  # no worker here: do not enqueue
        response = c.post(f"/rollbacks/{request.pk}/{decision}/", {"comment": "checked"})
    assert response.status_code == 302
    assert RollbackRequest.objects.get(pk=request.pk).state == outcome


def test_the_requester_cannot_approve_even_as_an_approver(client, personas, reviews):
    request = _asked(personas, by="erin")
    response = _client(client, personas, "erin").post(f"/rollbacks/{request.pk}/approve/", follow=True)
    assert b"another approver must approve it" in response.content
    assert RollbackRequest.objects.get(pk=request.pk).state == "requested"


def test_the_status_partial_stops_polling_when_finished(client, personas, reviews):
    request = _asked(personas)
    c = _client(client, personas, "carol")
    live = c.get(f"/rollbacks/{request.pk}/", HTTP_HX_REQUEST="true")
    assert live.status_code == 200 and b'hx-trigger="every 2s"' in live.content
    rollback_reject(user=personas["carol"], request_id=request.pk, comment="fix forward")
    finished = c.get(f"/rollbacks/{request.pk}/", HTTP_HX_REQUEST="true")
    assert finished.status_code == 286 and b"every 2s" not in finished.content
    assert b"fix forward" in finished.content


def test_an_approver_decides_in_the_admin_too(client, personas, reviews, django_capture_on_commit_callbacks):
    request = _asked(personas)
    c = _client(client, personas, "carol")
    listing = c.get("/admin/governance/rollbackrequest/")
    assert listing.status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        c.post(
            "/admin/governance/rollbackrequest/",
            {"action": "approve", "_selected_action": [request.pk]},
        )
    assert RollbackRequest.objects.get(pk=request.pk).state == "approved"
    viewer = _client(client, personas, "bob").get("/admin/governance/rollbackrequest/")
    assert viewer.status_code == 302  # to the admin's sign-in: viewers may not enter
