"""The change request pages, through the Django test client: who sees and may do
what on a dataset's change requests, a request's page and the protection section
of the dataset page; how bad input is answered; the live part that polls while a
worker checks or merges; the admin; and the change page's query count, pinned.

The worker's task bodies are called where a worker would run them
(tests/browser/test_change_page.py follows a real worker)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.models import AuditEvent, Branch, Dataset
from catalog.services.datasets import dataset_update
from catalog.services.refs import branch_create
from changes.models import Approval, BranchProtection, ChangeRequest
from changes.services import requests
from changes.services.protection import protection_set
from registry.services.training import training_record
from tests.factories.datasets import push

pytestmark = pytest.mark.django_db

# Pinned query counts, with the three every signed-in page makes (session, user,
# the user's roles). The change page reads the request, where it stands (rule,
# checks, approvals, stale approvals, branches), the branches' heads, the dry run,
# and the models trained on the dataset with their pins.
CHANGE_QUERIES = 15
LIST_QUERIES = 7

STEWARDS = ["alice", "erin"]
EVERYONE = ["alice", "bob", "carol", "dave", "erin"]


@pytest.fixture
def reviews(local_store, tmp_path, personas):
    """'reviews' with main protected (one approval) and a branch 'relabel' that
    changes one label; the dataset card declares the key column."""
    from cards.services.cards import card_import

    alice = personas["alice"]
    base = push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n"}, user=alice)
    base = card_import(user=alice, dataset=base.dataset, text="---\nkey_column: id\n---\n# Reviews\n")
    protection_set(user=alice, dataset=base.dataset, pattern="main", required_approvals=1)
    branch_create(dataset=base.dataset, name="relabel", start=base, user=alice)
    push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,wolf\n"}, user=alice, branch="relabel")
    return base.dataset


def _opened(personas, check: bool = True) -> ChangeRequest:
    change = requests.change_open(
        user=personas["alice"], dataset_name="reviews", source="relabel", title="Relabel the wolves"
    )
    if check:
        requests.change_check(change.pk)  # what the worker does once the request is committed
    change.refresh_from_db()
    return change


def _as(client, personas, name):
    client.force_login(personas[name])
    return client


def _text(response) -> str:
    return response.content.decode()


def _main(response) -> str:
    """What a page says, without the parts that change per request (the CSRF token)."""
    text = _text(response)
    return text[text.index("<main") : text.index("</main>")]


def _restricted(dataset: Dataset, personas) -> None:
    dataset_update(user=personas["alice"], dataset=dataset, visibility="restricted")


# -- a dataset's change requests ---------------------------------------------------------


@pytest.mark.parametrize("name", EVERYONE)
def test_everyone_who_reads_the_dataset_sees_its_change_requests_and_only_stewards_the_form(
    client, reviews, personas, name
):
    change = _opened(personas)
    page = _as(client, personas, name).get(reverse("changes:change_list", args=["reviews"]))
    assert page.status_code == 200
    assert "Relabel the wolves" in _text(page) and f"#{change.pk}" in _text(page)
    assert ("Open change request" in _text(page)) == (name in STEWARDS)


@pytest.mark.parametrize("name", EVERYONE)
def test_only_stewards_open_a_change_request(client, reviews, personas, name):
    response = _as(client, personas, name).post(
        reverse("changes:change_list", args=["reviews"]),
        {"source": "relabel", "into": "main", "title": "Wolves", "code_repo": "https://git.example.org/p"},
    )
    if name in STEWARDS:
        change = ChangeRequest.objects.get()
        assert response.status_code == 302 and response.url == f"/changes/{change.pk}/"
        assert (change.title, change.author_name, change.code_repo) == (
            "Wolves",
            name,
            "https://git.example.org/p",
        )
    else:
        assert response.status_code == 403
        assert "you need the steward role" in _text(response).lower()
        assert not ChangeRequest.objects.exists()


@pytest.mark.parametrize(
    "form, status, sentence",
    [
        ({"source": "nope", "into": "main"}, 400, "dataset reviews has no branch nope."),
        ({"source": "main", "into": "main"}, 400, "cannot merge into itself"),
        ({"source": "relabel", "into": "main", "title": "x" * 201}, 400, "The title is longer than 200"),
        ({"source": "../x", "into": "main"}, 400, "is not a valid branch name"),
    ],
)
def test_a_change_request_asked_badly_is_one_sentence_beside_the_form(
    client, reviews, personas, form, status, sentence
):
    response = _as(client, personas, "alice").post(reverse("changes:change_list", args=["reviews"]), form)
    assert response.status_code == status
    assert sentence in response.content.decode().replace("&#x27;", "'")
    assert 'id="open-error"' in _text(response)
    assert not ChangeRequest.objects.exists()


def test_a_second_request_for_the_same_branches_is_refused_naming_the_first(client, reviews, personas):
    first = _opened(personas)
    response = _as(client, personas, "alice").post(
        reverse("changes:change_list", args=["reviews"]), {"source": "relabel", "into": "main"}
    )
    assert response.status_code == 400
    assert f"change request #{first.pk} already proposes merging relabel into main." in _text(response)


def test_the_list_puts_open_requests_first_and_filters_by_state(client, reviews, personas, tmp_path):
    alice = personas["alice"]
    closed = _opened(personas)
    requests.change_close(user=alice, change=closed)
    branch_create(dataset=reviews, name="extra", start=closed.target_head, user=alice)
    push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n3,emu\n"}, user=alice, branch="extra")
    opened = requests.change_open(user=alice, dataset_name="reviews", source="extra", title="Add the emu")
    c = _as(client, personas, "bob")
    page = _text(c.get(reverse("changes:change_list", args=["reviews"])))
    assert page.index("Add the emu") < page.index("Relabel the wolves")
    only_open = _text(c.get(reverse("changes:change_list", args=["reviews"]) + "?state=open"))
    assert f"/changes/{opened.pk}/" in only_open and f"/changes/{closed.pk}/" not in only_open
    only_closed = _text(c.get(reverse("changes:change_list", args=["reviews"]) + "?state=closed"))
    assert f"/changes/{closed.pk}/" in only_closed and f"/changes/{opened.pk}/" not in only_closed


def test_the_list_query_count_is_pinned_and_does_not_grow(
    client, reviews, personas, tmp_path, django_assert_max_num_queries
):
    _opened(personas)
    c = _as(client, personas, "alice")
    url = reverse("changes:change_list", args=["reviews"])
    with django_assert_max_num_queries(LIST_QUERIES):
        assert c.get(url).status_code == 200
    alice = personas["alice"]
    for index in range(4):
        name = f"more-{index}"
        branch_create(dataset=reviews, name=name, start=reviews.versions.first(), user=alice)
        push(tmp_path, "reviews", {"labels.csv": f"id,label\n{index},x\n"}, user=alice, branch=name)
        requests.change_open(user=alice, dataset_name="reviews", source=name)
    with django_assert_max_num_queries(LIST_QUERIES):
        assert c.get(url).status_code == 200


# -- a change request's page --------------------------------------------------------------


def test_the_change_page_says_what_it_waits_for_with_its_checks_and_dry_run(client, reviews, personas):
    change = _opened(personas)
    page = _text(_as(client, personas, "bob").get(reverse("changes:change_detail", args=[change.pk])))
    assert "Relabel the wolves" in page and "What it waits for" in page
    assert "It needs 1 approval on this head, and has 0." in page
    for name in ("merge", "schema contract", "split leakage", "golden rule", "semantic version"):
        assert f'<td class="nowrap">{name}</td>' in page
    assert "built in" in page
    assert "<strong>Clean:</strong>" in page and "Files to take from relabel" in page
    assert '<td class="path">labels.csv</td>' in page
    assert f"{change.head.semver}" in page and "main is protected (main)" in page
    assert "No model is registered as trained on reviews." in page


@pytest.mark.parametrize(
    "name, approve, merge, close",
    [
        ("alice", False, False, True),  # the author and a steward: not mergeable before an approval
        ("carol", True, False, False),
        ("bob", False, False, False),
        ("dave", False, False, False),
        ("erin", True, False, True),  # an admin who did not open it
    ],
)
def test_each_role_is_offered_only_its_actions(client, reviews, personas, name, approve, merge, close):
    change = _opened(personas)
    page = _text(_as(client, personas, name).get(reverse("changes:change_detail", args=[change.pk])))
    assert (reverse("changes:change_approve", args=[change.pk]) in page) == approve
    assert (reverse("changes:change_merge", args=[change.pk]) in page) == merge
    assert (reverse("changes:change_close", args=[change.pk]) in page) == close


def test_stewards_are_offered_the_merge_once_nothing_blocks_it(client, reviews, personas):
    change = _opened(personas)
    requests.change_approve(user=personas["carol"], change=change, comment="labels checked")
    steward = _text(_as(client, personas, "alice").get(reverse("changes:change_detail", args=[change.pk])))
    assert "Ready to merge" in steward and "Merge into main" in steward
    assert "labels checked" in steward
    approver = _text(_as(client, personas, "carol").get(reverse("changes:change_detail", args=[change.pk])))
    assert "Ready to merge" in approver and "Merge into main" not in approver
    assert "You approved this head." in approver


@pytest.mark.parametrize(
    "name, status", [("carol", 302), ("erin", 302), ("alice", 403), ("bob", 403), ("dave", 403)]
)
def test_only_an_approver_who_is_not_the_author_approves(client, reviews, personas, name, status):
    change = _opened(personas)
    response = _as(client, personas, name).post(
        reverse("changes:change_approve", args=[change.pk]), {"comment": "looks right"}
    )
    assert response.status_code == status
    approvals = list(Approval.objects.filter(change=change).values_list("user__username", "comment"))
    assert approvals == ([(name, "looks right")] if status == 302 else [])
    if name == "alice":
        assert "The author of a change request cannot approve it" in _text(response)


def test_a_merge_before_its_approval_is_refused_on_the_page_in_one_sentence(client, reviews, personas):
    change = _opened(personas)
    response = _as(client, personas, "alice").post(reverse("changes:change_merge", args=[change.pk]))
    assert response.status_code == 409
    assert (
        f"change request #{change.pk} cannot merge yet: it needs 1 approval on this head, and has 0."
        in _text(response)
    )
    assert ChangeRequest.objects.get(pk=change.pk).state == "open"


@pytest.mark.parametrize(
    "name, status", [("alice", 302), ("erin", 302), ("carol", 403), ("bob", 403), ("dave", 403)]
)
def test_only_stewards_merge(client, reviews, personas, name, status, django_capture_on_commit_callbacks):
    change = _opened(personas)
    requests.change_approve(user=personas["carol"], change=change)
    with django_capture_on_commit_callbacks(execute=False):  # no worker here: do not enqueue
        response = _as(client, personas, name).post(reverse("changes:change_merge", args=[change.pk]))
    assert response.status_code == status
    assert ChangeRequest.objects.get(pk=change.pk).state == ("merging" if status == 302 else "open")


@pytest.mark.parametrize(
    "name, status", [("alice", 302), ("erin", 302), ("carol", 403), ("bob", 403), ("dave", 403)]
)
def test_only_stewards_close(client, reviews, personas, name, status):
    change = _opened(personas)
    response = _as(client, personas, name).post(reverse("changes:change_close", args=[change.pk]))
    assert response.status_code == status
    assert ChangeRequest.objects.get(pk=change.pk).state == ("closed" if status == 302 else "open")


def test_closing_a_closed_request_again_is_a_409_with_its_sentence(client, reviews, personas):
    change = _opened(personas)
    c = _as(client, personas, "alice")
    c.post(reverse("changes:change_close", args=[change.pk]))
    again = c.post(reverse("changes:change_close", args=[change.pk]))
    assert again.status_code == 409
    assert f"change request #{change.pk} is closed: only an open one can be closed." in _text(again)


def test_a_long_comment_is_refused_beside_the_form_and_kept(client, reviews, personas):
    change = _opened(personas)
    response = _as(client, personas, "carol").post(
        reverse("changes:change_approve", args=[change.pk]), {"comment": "y" * 10_001}
    )
    assert response.status_code == 400
    assert "The comment is longer than 10,000 characters." in _text(response)
    assert "y" * 10_001 in _text(response)
    assert not Approval.objects.exists()


def test_the_live_part_polls_while_the_worker_checks_and_merges_and_then_stops(
    client, reviews, personas, django_capture_on_commit_callbacks
):
    change = _opened(personas, check=False)
    c = _as(client, personas, "alice")
    url = reverse("changes:change_detail", args=[change.pk])
    waiting = c.get(url, HTTP_HX_REQUEST="true")
    assert waiting.status_code == 200 and 'hx-trigger="every 2s"' in _text(waiting)
    assert "A worker is checking relabel" in _text(waiting)
    assert "<html" not in _text(waiting)

    requests.change_check(change.pk)
    checked = c.get(url, HTTP_HX_REQUEST="true")
    assert checked.status_code == 286 and "hx-trigger" not in _text(checked)

    requests.change_approve(user=personas["carol"], change=change)
    with django_capture_on_commit_callbacks(execute=False):
        c.post(reverse("changes:change_merge", args=[change.pk]))
    merging = c.get(url, HTTP_HX_REQUEST="true")
    assert merging.status_code == 200 and "Merging…" in _text(merging) and "every 2s" in _text(merging)

    requests.change_merge_run(change.pk, "alice")  # the worker
    merged = c.get(url, HTTP_HX_REQUEST="true")
    main = Branch.objects.select_related("head").get(dataset=reviews, name="main").head
    assert merged.status_code == 286 and "Merged as <a href=" in _text(merged)
    assert f"reviews@{main.semver}" in _text(merged)
    assert main.merge_parent_id == change.head_id


def test_a_ci_check_still_running_is_followed_more_slowly(client, reviews, personas):
    change = _opened(personas)
    requests.check_report(user=personas["alice"], change=change, name="eval", state="running")
    live = _as(client, personas, "bob").get(
        reverse("changes:change_detail", args=[change.pk]), HTTP_HX_REQUEST="true"
    )
    assert live.status_code == 200 and 'hx-trigger="every 10s"' in _text(live)
    assert "Check eval is running." in _text(live)


def test_approvals_of_an_earlier_head_are_counted_as_no_longer_counting(client, reviews, personas, tmp_path):
    change = _opened(personas)
    requests.change_approve(user=personas["carol"], change=change)
    push(
        tmp_path,
        "reviews",
        {"labels.csv": "id,label\n1,lynx\n2,wolf\n"},
        user=personas["alice"],
        branch="relabel",
    )
    requests.change_check(change.pk)
    page = _text(_as(client, personas, "bob").get(reverse("changes:change_detail", args=[change.pk])))
    assert "1 approval of an earlier head no longer counts" in page
    assert "No approval of this head yet." in page


def test_the_metric_gate_shows_the_models_number_beside_the_changes(client, reviews, personas):
    alice = personas["alice"]
    trained = training_record(
        user=alice,
        model="sentiment",
        version="1.0",
        datasets={"train": "reviews@main"},
        metrics={"accuracy": 0.90},
    )
    change = _opened(personas)
    requests.check_report(
        user=alice,
        change=change,
        name="train-and-evaluate",
        state="passed",
        metrics={"accuracy": 0.80},
        url="https://ci.example.org/runs/7",
    )
    page = _text(_as(client, personas, "carol").get(reverse("changes:change_detail", args=[change.pk])))
    gate = page[page.index('id="gate-title"') : page.index('id="approvals-title"')]
    assert "Needs approval" in gate or "needs approval" in gate
    row = gate[gate.index("<tbody>") :]
    assert row.index("0.9") < row.index("0.8")  # the model version's number, then the change's
    assert "−0.1" in row and "regressed" in row and "train-and-evaluate" in row
    assert 'href="/models/sentiment/versions/1.0/"' in gate
    assert 'href="https://ci.example.org/runs/7"' in page
    models = page[page.index('id="models-title"') :]
    assert "sentiment@1.0" in models and f"reviews@{trained.model.pins.get().version.semver}" in models


def test_the_change_page_query_count_is_pinned_and_does_not_grow_with_its_checks(
    client, reviews, personas, django_assert_max_num_queries
):
    alice = personas["alice"]
    training_record(
        user=alice,
        model="sentiment",
        version="1.0",
        datasets={"train": "reviews@main"},
        metrics={"accuracy": 0.9},
    )
    change = _opened(personas)
    c = _as(client, personas, "carol")
    url = reverse("changes:change_detail", args=[change.pk])
    with django_assert_max_num_queries(CHANGE_QUERIES):
        assert c.get(url).status_code == 200
    for index in range(8):
        requests.check_report(
            user=alice, change=change, name=f"ci-{index}", state="passed", metrics={"accuracy": 0.9}
        )
    requests.change_approve(user=personas["erin"], change=change)
    with django_assert_max_num_queries(CHANGE_QUERIES) as captured:
        page = c.get(url)
    assert page.status_code == 200 and "ci-7" in _text(page)
    assert len(captured.captured_queries) <= CHANGE_QUERIES


# -- who may see at all ------------------------------------------------------------------


def _urls(change: ChangeRequest) -> list[tuple[str, str]]:
    return [
        ("get", reverse("changes:change_list", args=["reviews"])),
        ("post", reverse("changes:change_list", args=["reviews"])),
        ("get", reverse("changes:change_detail", args=[change.pk])),
        ("post", reverse("changes:change_approve", args=[change.pk])),
        ("post", reverse("changes:change_merge", args=[change.pk])),
        ("post", reverse("changes:change_close", args=[change.pk])),
        ("post", reverse("changes:protection_save", args=["reviews"])),
        ("post", reverse("changes:protection_remove", args=["reviews"])),
    ]


def test_anonymous_visitors_are_sent_to_sign_in(client, reviews, personas):
    change = _opened(personas)
    for method, url in _urls(change):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/"), url


@pytest.mark.parametrize("name", ["bob", "carol", "dave"])
def test_a_restricted_datasets_change_requests_do_not_exist_for_outsiders(client, reviews, personas, name):
    change = _opened(personas)
    _restricted(reviews, personas)
    c = _as(client, personas, name)
    for method, url in _urls(change):
        response = getattr(c, method)(url, {"pattern": "main"} if method == "post" else None)
        assert response.status_code == 404, url
    missing = c.get(reverse("changes:change_detail", args=[change.pk + 1000]))
    hidden = c.get(reverse("changes:change_detail", args=[change.pk]))
    assert _main(hidden).replace(str(change.pk), "N") == _main(missing).replace(str(change.pk + 1000), "N")
    assert ChangeRequest.objects.get(pk=change.pk).state == "open"


def test_the_owner_and_an_admin_still_see_a_restricted_datasets_change_requests(client, reviews, personas):
    change = _opened(personas)
    _restricted(reviews, personas)
    for name in ("alice", "erin"):
        assert (
            _as(client, personas, name).get(reverse("changes:change_detail", args=[change.pk])).status_code
            == 200
        )


# -- the dataset page: the link and the protection rules -------------------------------------


def test_the_dataset_page_links_to_its_change_requests_with_how_many_are_open(client, reviews, personas):
    _opened(personas)
    page = _text(_as(client, personas, "bob").get(reverse("catalog:dataset_detail", args=["reviews"])))
    assert 'href="/datasets/reviews/changes/"' in page and "(1 open)" in page
    section = page[page.index('id="protected-branches"') :]
    assert "Changes only through change requests · 1 approval to merge" in section
    assert "Protect a branch" not in section and "Remove the protection" not in section


def test_stewards_protect_change_and_remove_a_rule_on_the_dataset_page(client, reviews, personas):
    c = _as(client, personas, "alice")
    url = reverse("catalog:dataset_detail", args=["reviews"])
    assert "Protect a branch" in _text(c.get(url))
    saved = c.post(
        reverse("changes:protection_save", args=["reviews"]),
        {
            "pattern": "release/*",
            "refuse_direct": "on",
            "required_approvals": "2",
            "required_checks": ["merge", "schema contract"],
            "other_checks": "eval, lint",
            "regression": "block",
        },
    )
    assert saved.status_code == 302 and saved.url == url + "#protected-branches"
    rule = BranchProtection.objects.get(dataset=reviews, pattern="release/*")
    assert (rule.required_approvals, rule.regression) == (2, "block")
    assert sorted(rule.required_checks) == ["eval", "lint", "merge", "schema contract"]
    page = _text(c.get(url))
    assert "matches no branch yet" in page and "checks eval, lint, merge, schema contract must report" in page

    changed = c.post(
        reverse("changes:protection_save", args=["reviews"]),
        {"pattern": "main", "required_approvals": "0", "regression": "approve"},
    )
    assert changed.status_code == 302
    main = BranchProtection.objects.get(dataset=reviews, pattern="main")
    assert (main.refuse_direct, main.required_approvals) == (False, 0)

    removed = c.post(reverse("changes:protection_remove", args=["reviews"]), {"pattern": "release/*"})
    assert removed.status_code == 302
    assert list(BranchProtection.objects.values_list("pattern", flat=True)) == ["main"]
    actions = list(
        AuditEvent.objects.filter(object_type="protection").order_by("pk").values_list("action", flat=True)
    )
    assert actions == ["protection.create", "protection.create", "protection.change", "protection.delete"]


@pytest.mark.parametrize("name", ["bob", "carol", "dave"])
def test_only_stewards_change_protection(client, reviews, personas, name):
    c = _as(client, personas, name)
    saved = c.post(
        reverse("changes:protection_save", args=["reviews"]), {"pattern": "dev", "required_approvals": "1"}
    )
    removed = c.post(reverse("changes:protection_remove", args=["reviews"]), {"pattern": "main"})
    assert (saved.status_code, removed.status_code) == (403, 403)
    assert list(BranchProtection.objects.values_list("pattern", flat=True)) == ["main"]


@pytest.mark.parametrize(
    "form, sentence",
    [
        ({"pattern": "", "required_approvals": "1"}, "Name the branch to protect"),
        ({"pattern": "dev", "required_approvals": "many"}, "required approvals must be a whole number"),
        (
            {"pattern": "dev", "required_approvals": "11", "regression": "approve"},
            "required approvals must be between 0 and 10.",
        ),
        ({"pattern": "1.0.0", "required_approvals": "1"}, "is not a valid branch name"),
        ({"pattern": "dev", "required_approvals": "1", "regression": "shrug"}, "is not a regression rule"),
    ],
)
def test_a_bad_rule_is_one_sentence_on_the_dataset_page(client, reviews, personas, form, sentence):
    response = _as(client, personas, "alice").post(reverse("changes:protection_save", args=["reviews"]), form)
    assert response.status_code == 400
    page = _text(response).replace("&#x27;", "'")
    section = page[page.index('id="protected-branches"') :]
    assert sentence in section and '<details class="rule-new" open>' in section
    assert list(BranchProtection.objects.values_list("pattern", flat=True)) == ["main"]


def test_removing_a_rule_that_is_not_there_says_so(client, reviews, personas):
    response = _as(client, personas, "alice").post(
        reverse("changes:protection_remove", args=["reviews"]), {"pattern": "dev"}
    )
    assert response.status_code == 400 and "reviews has no protection rule 'dev'." in _text(response).replace(
        "&#x27;", "'"
    )


# -- the admin ---------------------------------------------------------------------------


def test_admins_read_change_requests_and_edit_protection_through_the_service(client, reviews, personas):
    change = _opened(personas)
    requests.change_approve(user=personas["carol"], change=change)
    c = _as(client, personas, "erin")
    for table in ("changerequest", "check", "approval", "branchprotection"):
        assert c.get(reverse(f"admin:changes_{table}_changelist")).status_code == 200, table
    assert c.get(reverse("admin:changes_changerequest_change", args=[change.pk])).status_code == 200
    rule = BranchProtection.objects.get(pattern="main")
    response = c.post(
        reverse("admin:changes_branchprotection_change", args=[rule.pk]),
        {
            "refuse_direct": "on",
            "required_approvals": "2",
            "required_checks": '["merge"]',
            "regression": "block",
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.required_approvals, rule.required_checks, rule.regression) == (2, ["merge"], "block")
    assert AuditEvent.objects.filter(action="protection.change", actor="erin").exists()
    closed = c.post(
        reverse("admin:changes_changerequest_changelist"),
        {"action": "close", "_selected_action": [change.pk]},
    )
    assert closed.status_code == 302 and ChangeRequest.objects.get(pk=change.pk).state == "closed"


def test_the_admin_hides_a_restricted_datasets_change_requests_from_staff_who_cannot_read_it(
    client, reviews, personas
):
    from django.contrib.auth.models import Permission

    change = _opened(personas)
    requests.change_approve(user=personas["carol"], change=change)
    _restricted(reviews, personas)
    dave = personas["dave"]
    dave.is_staff = True
    dave.save()
    dave.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    c = _as(client, personas, "dave")
    for table in ("changerequest", "check", "approval", "branchprotection"):
        page = c.get(reverse(f"admin:changes_{table}_changelist"))
        assert page.status_code == 200 and list(page.context["cl"].result_list) == [], table
    reviews.owners.add(dave)
    page = c.get(reverse("admin:changes_changerequest_changelist"))
    assert [row.pk for row in page.context["cl"].result_list] == [change.pk]


def test_viewers_and_approvers_do_not_see_change_requests_in_the_admin(client, reviews, personas):
    # A viewer is sent to the admin's sign-in; an approver enters the admin (for
    # rollbacks) but is refused these tables.
    for name, status in (("bob", 302), ("carol", 403)):
        for table in ("changerequest", "branchprotection"):
            response = _as(client, personas, name).get(reverse(f"admin:changes_{table}_changelist"))
            assert response.status_code == status, (name, table)


def test_the_change_page_says_how_the_card_changes(db, local_store, tmp_path, personas, client):
    from cards.services.cards import card_import
    from catalog.services.refs import branch_create
    from changes.services import requests as change_requests
    from tests.factories.datasets import push

    alice = personas["alice"]
    base = push(tmp_path, "notes", {"a.csv": "id\n1\n"}, user=alice)
    branch_create(dataset=base.dataset, name="docs", start=base, user=alice)
    card_import(
        user=alice,
        dataset=base.dataset,
        branch="docs",
        text="---\nlicense: cc-by-4.0\n---\n# Notes\n\n## Dataset Description\n\nShort notes.\n",
    )
    change = change_requests.change_open(user=alice, dataset_name="notes", source="docs")
    change_requests.change_check(change.pk)  # the worker
    client.force_login(personas["bob"])
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "The card of docs differs from main's: completeness 0% → 22%." in page
    assert "front matter license: added" in page and "section summary: written" in page
