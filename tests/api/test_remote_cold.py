"""Pulling data that sits in cold storage through the API: the server starts the
restore and says when to come back (503, `restoring`, Retry-After); the client
exits 3 and writes nothing; once the restore is done, the same pull succeeds.

The local store simulates a Glacier restore's delay (AWS quotes hours; the server
here is given one second). Everything else is real: a server process, the client,
the retention run that moved the packs to the cold tier.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Pack
from lifecycle.models import PackRestore, RetentionRun
from lifecycle.services.retention import retention_advance, retention_plan
from strata_client import Client, Restoring
from tests.factories.files import ROOT, tree_digests, write_random
from tests.factories.retention import default_policies


@pytest.fixture
def quick_restores(monkeypatch):
    # Read by the server process the strata_server fixture starts after this one.
    monkeypatch.setenv("STRATA_LOCAL_RESTORE_SECONDS", "1")


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_cold_version_pulled_through_the_api_is_restored_then_pulls(
    quick_restores, strata_server, tokens, tmp_path
):
    default_policies()
    source = tmp_path / "source"
    write_random(source / "a.bin", 300_000, seed=5)
    (source / "notes.txt").write_text("cold but kept\n")
    client = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "cache"))
    client.push(str(source), "archive")
    run = retention_plan(now=timezone.now() + timedelta(days=200))
    assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE
    assert set(Pack.objects.values_list("tier", flat=True)) == {"cold"}

    command = subprocess.run(
        [sys.executable, "-m", "strata_client", "pull", "archive", str(tmp_path / "by-command")],
        env={
            **os.environ,
            "STRATA_URL": strata_server.url,
            "STRATA_TOKEN": tokens["alice"],
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert command.returncode == 3, command.stderr
    assert "is in cold storage: restoring, ready in under a minute" in command.stderr
    assert not (tmp_path / "by-command").exists()
    assert PackRestore.objects.exists()

    dest = tmp_path / "out"
    deadline = time.monotonic() + 30
    while True:
        try:
            pulled = client.pull("archive", str(dest))
            break
        except Restoring as restoring:
            assert restoring.retry_after is not None and restoring.retry_after <= 60
            assert not dest.exists()
            assert time.monotonic() < deadline, str(restoring)
            time.sleep(0.5)
    assert pulled.file_count == 2
    assert tree_digests(dest) == tree_digests(source)
