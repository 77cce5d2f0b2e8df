"""Rollback with four eyes, applied by a real Celery worker on Redis.

The worker is a separate process sharing the test database, the store and a Redis
queue of this test's own. Crashes are real: a failpoint makes the worker SIGKILL
itself at a chosen step (see catalog/failpoints.py), then a fresh worker resumes.
E-mail is written to files by Django's file backend (delivery itself is outside
our walls).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from catalog.errors import Forbidden, UserError
from catalog.models import AuditEvent, Branch, Chunk, Pack, Version
from catalog.selectors import resolve_spec, version_log
from catalog.services.pull import version_pull
from catalog.services.versions import version_push
from catalog.store import get_backend
from governance.models import RollbackRequest
from governance.services.rollback import rollback_approve, rollback_reject, rollback_request
from tests.factories.files import tree_digests
from tests.workers import CeleryWorker as Worker
from tests.workers import worker_environment

State = RollbackRequest.State


@pytest.fixture
def history(personas, store_url, tmp_path):
    """reviews: 1.0.0 good, 1.1.0 fine, 1.2.0 bad, each on main, pushed by alice."""
    data = tmp_path / "data"
    data.mkdir()
    for index, text in enumerate(["good", "fine", "bad"]):
        (data / "reviews.csv").write_text(f"id,label\n1,{text}\n")
        (data / f"batch-{index}.txt").write_text(f"batch {index} " * 50)
        version_push(path=str(data), dataset_name="reviews", user=personas["alice"], message=text)
    return {v.message: v for v in Version.objects.filter(dataset__name="reviews")}


@pytest.fixture
def start_worker(transactional_db, store_url, queue, redis_url, settings, tmp_path):
    workers: list[Worker] = []
    env = worker_environment(
        settings=settings,
        tmp_path=tmp_path,
        queue=queue,
        redis_url=redis_url,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp_path / "mail"),
        STRATA_LOCAL_RESTORE_SECONDS="2",
    )

    def start(failpoints: str = "") -> Worker:
        worker_env = dict(env, STRATA_FAILPOINTS=failpoints) if failpoints else env
        worker = Worker(worker_env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _wait_for(request_id: int, states, timeout: float = 90) -> RollbackRequest:
    deadline = time.monotonic() + timeout
    while True:
        request = RollbackRequest.objects.get(pk=request_id)
        if request.state in states:
            return request
        assert time.monotonic() < deadline, f"still {request.state}: {request.error}"
        time.sleep(0.2)


def _ask(personas, history, target="good", reason="labels broken in 1.2.0"):
    return rollback_request(
        user=personas["alice"],
        dataset=history[target].dataset,
        branch="main",
        target=history[target],
        reason=reason,
    )


# -- the four-eyes rules (no worker needed) ----------------------------------------------


def test_requester_cannot_approve_own_rollback(personas, history):
    request = rollback_request(
        user=personas["erin"],
        dataset=history["good"].dataset,
        branch="main",
        target=history["good"],
        reason="r",
    )
    with pytest.raises(Forbidden, match="you asked for this rollback; another approver must approve it"):
        rollback_approve(user=personas["erin"], request_id=request.pk)
    for name in ("alice", "bob", "dave"):
        with pytest.raises(Forbidden, match="approver role"):
            rollback_approve(user=personas[name], request_id=request.pk)
    assert RollbackRequest.objects.get(pk=request.pk).state == State.REQUESTED


def test_a_rejection_says_why_and_ends_the_request(personas, history):
    request = _ask(personas, history)
    with pytest.raises(UserError, match="a comment is required"):
        rollback_reject(user=personas["carol"], request_id=request.pk, comment=" ")
    rejected = rollback_reject(
        user=personas["carol"], request_id=request.pk, comment="1.2.0 is fine, fix forward"
    )
    assert rejected.state == State.REJECTED and rejected.decider_name == "carol"
    with pytest.raises(UserError, match="already rejected"):
        rollback_approve(user=personas["carol"], request_id=request.pk)
    head = Branch.objects.get(dataset__name="reviews", name="main").head
    assert head == history["bad"]
    assert AuditEvent.objects.filter(action="rollback.reject", actor="carol").exists()


def test_bad_requests_are_refused(personas, history):
    dataset = history["good"].dataset
    with pytest.raises(UserError, match="already the head"):
        rollback_request(
            user=personas["alice"], dataset=dataset, branch="main", target=history["bad"], reason="r"
        )
    with pytest.raises(UserError, match="a reason is required"):
        rollback_request(
            user=personas["alice"], dataset=dataset, branch="main", target=history["good"], reason=""
        )
    with pytest.raises(Forbidden):
        rollback_request(
            user=personas["bob"], dataset=dataset, branch="main", target=history["good"], reason="r"
        )
    assert not RollbackRequest.objects.exists()


# -- with a real worker ------------------------------------------------------------------


@pytest.mark.slow
def test_the_whole_flow(personas, history, start_worker, tmp_path):
    start_worker()
    pinned = tmp_path / "pinned-before"
    version_pull(version=history["bad"], dest=str(pinned))
    request = _ask(personas, history)
    rollback_approve(user=personas["carol"], request_id=request.pk, comment="agreed")
    done = _wait_for(request.pk, {State.DONE, State.FAILED})
    assert done.state == State.DONE, done.error

    head = Branch.objects.get(dataset__name="reviews", name="main").head
    assert head == done.result
    assert head.tree_id == history["good"].tree_id and head.parent == history["bad"]
    assert head.message == "Rollback to 1.0.0: labels broken in 1.2.0"
    assert [v.message for v in version_log(head)][1:] == ["bad", "fine", "good"]  # history kept
    history_now = {v.message: v for v in Version.objects.filter(id__in=[v.id for v in history.values()])}
    assert history_now["bad"].rolled_back and history_now["fine"].rolled_back
    assert not history_now["good"].rolled_back
    assert "labels broken" in history_now["bad"].rolled_back_reason
    # Consumers pinned to exact versions are untouched; @main is the new head.
    again = tmp_path / "pinned-after"
    version_pull(version=resolve_spec("reviews@1.2.0")[1], dest=str(again))
    assert tree_digests(again) == tree_digests(pinned)
    assert resolve_spec("reviews@main")[1] == head
    actions = list(
        AuditEvent.objects.filter(object_type="rollback").order_by("created").values_list("action", flat=True)
    )
    assert actions == [
        "rollback.request", "rollback.approve", "rollback.restoring", "rollback.verifying", "rollback.applying",
        "rollback.done",
    ]  # fmt: skip
    mail = "".join(path.read_text() for path in (tmp_path / "mail").glob("*"))
    assert "done" in mail and "Reason: labels broken in 1.2.0" in mail


@pytest.mark.slow
def test_two_rollbacks_of_one_branch_at_once_one_wins(personas, history, start_worker):
    first = _ask(personas, history, target="good")
    second = _ask(personas, history, target="fine")
    rollback_approve(user=personas["carol"], request_id=first.pk)
    rollback_approve(user=personas["carol"], request_id=second.pk)
    start_worker()
    outcomes = {_wait_for(r.pk, {State.DONE, State.FAILED}).state for r in (first, second)}
    assert outcomes == {State.DONE, State.FAILED}
    loser = RollbackRequest.objects.get(pk__in=[first.pk, second.pk], state=State.FAILED)
    assert loser.error == "branch moved since approval; ask again."
    assert Version.objects.filter(message__startswith="Rollback to").count() == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["rollback.restoring", "rollback.verifying", "rollback.applying", "rollback.committing"]
)
def test_a_worker_killed_at_any_step_resumes_and_applies_once(personas, history, start_worker, point):
    crashing = start_worker(failpoints=point)
    request = _ask(personas, history)
    rollback_approve(user=personas["carol"], request_id=request.pk)
    crashing.process.wait(60)
    assert crashing.process.returncode == -9  # SIGKILL, no cleanup
    stuck = RollbackRequest.objects.get(pk=request.pk)
    assert stuck.state == point.split(".")[1].replace("committing", "applying")
    assert Branch.objects.get(dataset__name="reviews", name="main").head == history["bad"]
    start_worker()
    done = _wait_for(request.pk, {State.DONE, State.FAILED})
    assert done.state == State.DONE, done.error
    assert Version.objects.filter(message__startswith="Rollback to").count() == 1
    assert AuditEvent.objects.filter(action="rollback.done").count() == 1


@pytest.mark.slow
def test_a_cold_target_is_restored_before_it_is_applied(personas, history, start_worker, store_url):
    backend = get_backend()
    for pack in Pack.objects.all():
        backend.set_tier(pack.id, "cold")
    Pack.objects.update(tier=Pack.Tier.COLD)
    request = _ask(personas, history)
    rollback_approve(user=personas["carol"], request_id=request.pk)
    start_worker()
    if store_url.startswith("file://"):
        # The local store keeps cold packs unreadable until a restore has run its
        # course (2 s here; hours on Glacier), and the request says so meanwhile.
        restoring = _wait_for(request.pk, {State.RESTORING})
        deadline = time.monotonic() + 30
        while "ready in about" not in RollbackRequest.objects.get(pk=request.pk).progress:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert restoring.state == State.RESTORING
    done = _wait_for(request.pk, {State.DONE, State.FAILED})
    assert done.state == State.DONE, done.error


@pytest.mark.slow
def test_a_corrupt_target_fails_at_verifying_and_leaves_the_branch(personas, history, start_worker):
    only_in_good = (
        Chunk.objects.exclude(id__in=[c for v in ("fine", "bad") for c in _chunks_of(history[v])])
        .filter(id__in=_chunks_of(history["good"]))
        .first()
    )
    _flip(only_in_good)
    request = _ask(personas, history)
    rollback_approve(user=personas["carol"], request_id=request.pk)
    start_worker()
    failed = _wait_for(request.pk, {State.DONE, State.FAILED})
    assert failed.state == State.FAILED
    assert failed.error.startswith("the target does not verify: chunk") and only_in_good.id in failed.error
    assert Branch.objects.get(dataset__name="reviews", name="main").head == history["bad"]
    assert not Version.objects.filter(rolled_back=True).exists()


def _chunks_of(version: Version) -> list[str]:
    from catalog.store import file_chunks, walk_tree

    digests = [item.entry.digest for item in walk_tree(version.tree_id) if item.entry.is_file]
    return [chunk for chunks in file_chunks(digests).values() for chunk in chunks]


def _flip(chunk: Chunk) -> None:
    backend = get_backend()
    offset = chunk.offset + chunk.stored_length // 2
    if hasattr(backend, "root"):
        path = Path(backend.root) / "packs" / chunk.pack_id[:2] / f"{chunk.pack_id}.pack"
        data = bytearray(path.read_bytes())
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        key = backend._key(chunk.pack_id)
        body = bytearray(backend.client.get_object(Bucket=backend.bucket, Key=key)["Body"].read())
        body[offset] ^= 0xFF
        backend.client.put_object(Bucket=backend.bucket, Key=key, Body=bytes(body))


def test_request_decision_and_outcome_are_sent_by_mail_and_webhook(personas, history, settings, mailoutbox):
    """The webhook receiver is a real HTTP server on loopback; mail goes to Django's
    test outbox (delivery itself is outside our walls)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the http.server name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.STRATA_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            request = _ask(personas, history)
        with TestCase.captureOnCommitCallbacks(execute=True):
            rollback_reject(user=personas["carol"], request_id=request.pk, comment="fix forward instead")
    finally:
        server.shutdown()
    assert [event["event"] for event in received] == ["rollback.requested", "rollback.rejected"]
    assert received[0]["dataset"] == "reviews" and received[0]["target"] == history["good"].id
    # The requester, and everyone who may decide: approvers and admins.
    expected = ["alice@example.org", "carol@example.org", "erin@example.org"]
    assert [sorted(message.to) for message in mailoutbox] == [expected, expected]
    assert "fix forward instead" in mailoutbox[1].body


def test_rollback_mail_goes_only_to_approvers_who_may_read_the_dataset(personas, history, mailoutbox):
    from django.contrib.auth.models import Group, User
    from django.test import TestCase

    from catalog.services.datasets import dataset_update

    # frank approves for the fraud team, which may read the now restricted reviews; carol may not.
    frank = User.objects.create_user("frank", "frank@example.org", "frank-password")
    frank.groups.add(Group.objects.get(name="approver"))
    team = Group.objects.create(name="fraud-team")
    frank.groups.add(team)
    dataset_update(
        user=personas["alice"],
        dataset=history["good"].dataset,
        visibility="restricted",
        groups=["fraud-team"],
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        _ask(personas, history)
    assert [sorted(message.to) for message in mailoutbox] == [
        ["alice@example.org", "erin@example.org", "frank@example.org"]
    ]
