"""The cost page and the retention runs pages show the service's figures."""

from __future__ import annotations

from lifecycle.models import RetentionRun


def test_cost_page_shows_the_hand_worked_figures(client, personas, cost_scenario):
    client.force_login(personas["bob"])
    page = client.get("/cost/").content.decode()
    for figure in ("$41.25", "$23.00", "$6.25", "$12.00", "$30.75", "$5.21", "about 4 h", "<svg"):
        assert figure in page, figure


def test_an_admin_plans_a_run_and_an_approver_approves_a_large_one(client, personas, cost_scenario, settings):
    settings.STRATA_RETENTION_APPROVAL_BYTES = 0
    settings.CELERY_TASK_ALWAYS_EAGER = False
    client.force_login(personas["bob"])
    client.post("/retention/new/")
    assert not RetentionRun.objects.exists()  # viewers cannot plan
    client.force_login(personas["erin"])
    response = client.post("/retention/new/")
    run = RetentionRun.objects.get()
    assert response.status_code == 302
    page = client.get(f"/retention/{run.pk}/").content.decode()
    assert "Dry-run report" in page
    client.force_login(personas["carol"])
    if run.state == RetentionRun.State.AWAITING:
        client.post(f"/retention/{run.pk}/approve/")
        run.refresh_from_db()
        assert run.state == RetentionRun.State.APPROVED and run.approver_name == "carol"
    assert "Retention runs" in client.get("/retention/").content.decode()


def test_only_admins_edit_retention_policies_in_the_admin_and_each_change_is_audited(client, personas):
    from catalog.models import AuditEvent
    from lifecycle.models import RetentionPolicy
    from tests.factories.retention import default_policies

    default_policies()
    policy = RetentionPolicy.objects.get(pattern="exp/*")
    url = f"/admin/lifecycle/retentionpolicy/{policy.pk}/change/"
    form = {"pattern": "exp/*", "position": 20, "expire_after_days": 14}
    client.force_login(personas["carol"])
    client.post(url, form)
    assert RetentionPolicy.objects.get(pk=policy.pk).expire_after_days == 30
    client.force_login(personas["erin"])
    client.post(url, form)
    assert RetentionPolicy.objects.get(pk=policy.pk).expire_after_days == 14
    event = AuditEvent.objects.get(action="retention_policy.change")
    assert event.before["expire_after_days"] == 30 and event.after["expire_after_days"] == 14


def test_a_bill_too_small_to_round_to_a_cent_is_not_shown_as_free():
    from decimal import Decimal

    from catalog.templatetags.strata import dollars

    assert dollars(Decimal("0.0001")) == "under $0.01"
    assert dollars(Decimal("0")) == "$0.00"
    assert dollars(Decimal("1234.565")) == "$1,234.57"


def test_a_run_names_expiring_versions_of_restricted_datasets_only_to_their_readers(
    client, personas, tmp_path, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import Dataset
    from catalog.services.datasets import dataset_update
    from catalog.services.refs import branch_create
    from catalog.services.versions import version_push
    from lifecycle.services.retention import retention_plan
    from tests.factories.retention import default_policies

    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    default_policies()
    alice = personas["alice"]
    for name in ("open", "secret"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "a.txt").write_text(f"{name} one\n")
        head = version_push(path=str(folder), dataset_name=name, user=alice).version
        branch_create(user=alice, dataset=head.dataset, name="exp/x", start=head)
        (folder / "b.txt").write_text(f"{name} two\n")
        version_push(path=str(folder), dataset_name=name, user=alice, branch="exp/x")
    dataset_update(user=alice, dataset=Dataset.objects.get(name="secret"), visibility="restricted")
    run = retention_plan(now=timezone.now() + timedelta(days=40))
    assert {item["label"] for item in run.report["expiring"]} == {"open@1.1.0", "secret@1.1.0"}

    for persona, sees_secret in [("alice", True), ("erin", True), ("bob", False), ("dave", False)]:
        client.force_login(personas[persona])
        page = client.get(f"/retention/{run.pk}/").content.decode()
        assert "open@1.1.0" in page, persona
        assert ("secret@1.1.0" in page) == sees_secret, persona
        assert ("1 version of datasets you cannot see" in page) != sees_secret, persona
        assert "secret@" not in client.get("/retention/").content.decode(), persona


def test_a_small_store_costs_under_a_cent_on_the_page_not_nothing(client, personas):
    from catalog.models import Pack

    Pack.objects.create(id="a" * 64, size=5 * 1024 * 1024, chunk_count=100)  # 5 MiB, hot
    client.force_login(personas["bob"])
    page = client.get("/cost/").content.decode()
    # This month's figure and the total row; no version holds the pack, so the
    # projections rightly expect it collected.
    assert '<span class="figure-value">under $0.01</span>' in page
    assert page.count("under $0.01") == 2
