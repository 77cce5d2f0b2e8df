"""`strata retention` on the server: plan, run, approve and list, as an operator
without the dashboard uses them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from catalog.models import Version
from lifecycle.models import RetentionPolicy, RetentionRun
from tests.factories.files import write_random

# Packs made by this test are seconds old: no grace period, or nothing is deleted.
NO_GRACE = {"STRATA_RETENTION_GRACE_HOURS": "0"}


def _expired_experiment(cli, tmp_path):
    """`main` with one file, and an experiment branch whose only commit is 60 days
    old: the default policy expires it, and its big file's pack is garbage."""
    RetentionPolicy.objects.get_or_create(
        pattern="main",
        defaults={"position": 10, "keep_forever": True, "warm_after_days": 30, "cold_after_days": 180},
    )
    RetentionPolicy.objects.get_or_create(pattern="exp/*", defaults={"position": 20, "expire_after_days": 30})
    base = tmp_path / "base"
    write_random(base / "keep.bin", 20_000, 1)
    old = (datetime.now(UTC) - timedelta(days=61)).isoformat()
    cli("push", str(base), "trials", "--date", old, check=True)
    cli("branch", "trials", "exp/x", "--from", "main", check=True)
    trial = tmp_path / "trial"
    write_random(trial / "keep.bin", 20_000, 1)
    write_random(trial / "scratch.bin", 600_000, 2)
    date = (datetime.now(UTC) - timedelta(days=60)).isoformat()
    cli("push", str(trial), "trials", "--branch", "exp/x", "--date", date, check=True)


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_run_expires_and_deletes_and_list_shows_it(cli, tmp_path):
    _expired_experiment(cli, tmp_path)
    done = cli("retention", "run", "--json", env_extra=NO_GRACE, check=True)
    report = json.loads(done.stdout)
    assert report["state"] == "done"
    assert report["report"]["versions_expired"] == 1
    assert report["report"]["deletions"] >= 1
    assert list(Version.objects.filter(expired__isnull=False).values_list("semver", flat=True)) == ["1.1.0"]
    listed = cli("retention", "list", check=True).stdout
    assert (
        f"#{report['id']} " in listed and "done" in listed and "1 version expires, 1 pack deleted" in listed
    )
    # What main holds is untouched and still verifies.
    assert cli("verify", "trials@main").returncode == 0


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_large_sweep_waits_and_approve_applies_it(cli, tmp_path):
    _expired_experiment(cli, tmp_path)
    large = NO_GRACE | {"STRATA_RETENTION_APPROVAL_BYTES": "1"}
    waiting = cli("retention", "run", env_extra=large, check=True)
    assert "waiting for an approver" in waiting.stdout
    assert "applied by this command" not in waiting.stdout
    run = RetentionRun.objects.get(state=RetentionRun.State.AWAITING)

    approved = cli("retention", "approve", str(run.pk), env_extra=large, check=True)
    assert f"retention run #{run.pk}: done" in approved.stdout
    # Applied here, by the function a worker's task calls for a run approved on the dashboard.
    assert "applied by this command" in approved.stdout
    run.refresh_from_db()
    assert run.state == RetentionRun.State.DONE
    assert run.approver_name == ""  # the local operator, audited as "local"

    again = cli("retention", "approve", str(run.pk))
    assert again.returncode == 2
    assert again.stderr.strip() == f"error: retention run {run.pk} is not waiting for approval."
    missing = cli("retention", "approve")
    assert missing.returncode == 2
    assert "say which run to approve" in missing.stderr
