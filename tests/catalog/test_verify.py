"""`strata verify` after retention: expired versions and cold packs are listed, not
reported broken, and verifying never asks for a restore."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Version
from catalog.tasks import verify_store
from lifecycle.models import RetentionPolicy, RetentionRun
from lifecycle.services.retention import retention_advance, retention_plan
from tests.factories.files import write_random


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


def _spy_on_restores(monkeypatch) -> list[str]:
    """Record every restore asked of either backend (the request still goes through)."""
    from strata_store.backends.local import LocalBackend
    from strata_store.backends.s3 import S3Backend

    asked: list[str] = []
    for backend_class in (LocalBackend, S3Backend):
        original = backend_class.request_restore

        def spy(self, pack_id, original=original):
            asked.append(pack_id)
            return original(self, pack_id)

        monkeypatch.setattr(backend_class, "request_restore", spy)
    return asked


def test_verify_lists_cold_packs_without_reading_or_restoring_them(strata, tmp_path, monkeypatch):
    from catalog.models import Pack
    from lifecycle.models import PackRestore

    _policies()
    data = tmp_path / "data"
    write_random(data / "a.bin", 100_000, 1)
    strata("push", str(data), "reviews")
    _run_retention(200)
    cold = list(Pack.objects.filter(tier=Pack.Tier.COLD).values_list("id", flat=True))
    assert len(cold) == 1
    asked = _spy_on_restores(monkeypatch)

    text = strata("verify")
    assert "1 packs (" in text and "are cold, not checked (restore to verify):" in text
    assert f"  cold {cold[0]} " in text
    assert "BROKEN" not in text and "OK: every readable byte verified." in text
    as_json = json.loads(strata("verify", "--json"))
    assert as_json["ok"] and as_json["broken"] == []
    assert [entry["pack"] for entry in as_json["cold_packs"]] == cold
    nightly = verify_store()
    assert nightly["ok"] and nightly["cold_packs"] == 1

    assert asked == []
    assert not PackRestore.objects.exists()


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_verify_reads_a_cold_pack_once_its_restore_finished(strata, tmp_path, monkeypatch):
    from catalog.models import Pack
    from catalog.store import get_backend
    from lifecycle.models import PackRestore
    from lifecycle.services.retention import pack_restore_track, restores_poll

    _policies()
    data = tmp_path / "data"
    write_random(data / "a.bin", 100_000, 1)
    strata("push", str(data), "reviews")
    _run_retention(200)
    pack_id = Pack.objects.get(tier=Pack.Tier.COLD).id
    backend = get_backend()
    pack_restore_track(pack_id=pack_id, state=backend.request_restore(pack_id), requested_for="a test")
    backend.restore_seconds = 0  # the restore has finished
    assert restores_poll() == 1 and PackRestore.objects.get().state == "ready"

    as_json = json.loads(strata("verify", "--json"))
    assert as_json["ok"] and as_json["cold_packs"] == [] and as_json["packs"] == 1
