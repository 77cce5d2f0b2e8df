"""`strata verify` after retention: expired versions and cold packs are listed, not
reported broken, and verifying never asks for a restore."""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from catalog.models import RetentionPolicy, RetentionRun, Version
from catalog.services.retention import retention_advance, retention_plan
from catalog.tasks import verify_store
from tests.conftest import write_random


def _policies() -> None:
    """The defaults the data migration makes; a transactional test earlier in the
    session may have emptied the table."""
    RetentionPolicy.objects.get_or_create(
        pattern="main",
        defaults={"position": 10, "keep_forever": True, "warm_after_days": 30, "cold_after_days": 180},
    )
    RetentionPolicy.objects.get_or_create(pattern="exp/*", defaults={"position": 20, "expire_after_days": 30})


def _run_retention(days_from_now: int) -> None:
    run = retention_plan(now=timezone.now() + timedelta(days=days_from_now))
    assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE


def _push_an_experiment_that_expires(cli, tmp_path) -> Version:
    _policies()
    data = tmp_path / "data"
    write_random(data / "a.bin", 100_000, 1)
    cli("push", str(data), "reviews", check=True)
    cli("branch", "reviews", "exp/x", "--from", "1.0.0", check=True)
    write_random(data / "x.bin", 100_000, 2)
    cli("push", str(data), "reviews", "--branch", "exp/x", check=True)
    _run_retention(40)
    gone = Version.objects.get(expired__isnull=False)
    assert gone.expired is not None
    return gone


def test_verify_skips_versions_retention_expired_and_says_so(cli, tmp_path):
    gone = _push_an_experiment_that_expires(cli, tmp_path)
    day = f"{gone.expired:%Y-%m-%d}"

    verified = cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"reviews@{gone.semver} expired on {day}, not checked" in verified.stdout
    assert "BROKEN" not in verified.stdout
    assert "Checked 1 versions" in verified.stdout
    assert "OK: every reachable byte verified." in verified.stdout

    as_json = json.loads(cli("verify", "reviews", "--json", check=True).stdout)
    assert as_json["ok"] and as_json["broken"] == []
    assert as_json["expired"] == [{"version": f"reviews@{gone.semver}", "expired": day}]

    nightly = verify_store()
    assert nightly["ok"] and nightly["broken"] == 0 and nightly["expired"] == 1


def test_verifying_one_expired_version_says_it_expired_in_one_sentence(cli, tmp_path):
    gone = _push_an_experiment_that_expires(cli, tmp_path)

    verified = cli("verify", f"reviews@{gone.semver}")
    assert verified.returncode == 2
    assert f"expired under the retention policy on {gone.expired:%Y-%m-%d}" in verified.stderr
    assert "broken" not in verified.stderr.lower() and "BROKEN" not in verified.stdout
    assert len(verified.stderr.strip().splitlines()) == 1
