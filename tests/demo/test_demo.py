"""The demo catalog tells the whole story on real data: raw → cleaned → labelled →
split → model 1.0 → a label shift → model 1.1 worse → a rollback waiting for an
approver → tiers and cost. Built through the same services as everything else."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
import urllib.request
from http.cookiejar import CookieJar

import pytest
from django.core.management import call_command

from catalog.models import Branch, Dataset, Pack, Version
from catalog.selectors.changes import change_report
from governance.models import RollbackRequest
from lifecycle.services.costs import cost_report
from lineage.models import Run
from ops.demo import MODEL, DemoError, demo_build
from registry.models import ModelVersion
from tests.factories.files import ROOT
from tests.factories.retention import default_policies
from tests.workers import free_port


def test_the_demo_tells_the_whole_story(db, settings, tmp_path, client):
    """Built once (it takes seconds), then read chapter by chapter."""
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    default_policies()  # as the migration makes them; a transactional test may have emptied them
    demo = demo_build(password_file=tmp_path / "demo-passwords.txt")

    # Raw → cleaned → labelled → split, each step a recorded run.
    raw = list(Version.objects.filter(dataset__name="digits-raw").order_by("created"))
    assert [v.semver for v in raw] == ["1.0.0", "1.1.0"]
    assert all(v.stage == "raw" for v in raw)
    digits = list(Version.objects.filter(dataset__name="digits").order_by("created"))
    # The raw scans were collected weeks before the rest of the story.
    assert (digits[0].created - raw[-1].created).days >= 44
    # Cleaned, its card (a patch), labelled, split; relabelled, split again.
    assert [v.stage for v in digits] == ["cleaned", "cleaned", "labelled", "split", "labelled", "split"]
    assert [v.semver for v in digits][:2] == ["1.0.0", "1.0.1"]
    # 1,797 scans plus 24 re-sent duplicates, with collection.csv; cleaning drops
    # the duplicates and 6 truncated files and adds images.csv.
    assert raw[-1].file_count == 1797 + 24 + 1
    assert digits[0].file_count == 1797 - 6 + 1
    steps = set(Run.objects.values_list("step", flat=True))
    assert {"collection", "cleaning", "annotation", "split", "training"} <= steps
    clean_run = Run.objects.get(name="clean-scans")
    assert clean_run.params["duplicates_dropped"] == 24 and clean_run.params["corrupt_dropped"] == 6

    # Model 1.1 is worse, and the data it was trained on shows the label shift.
    first = ModelVersion.objects.get(name=MODEL, version="1.0")
    second = ModelVersion.objects.get(name=MODEL, version="1.1")
    assert first.metrics["accuracy"] > 0.93
    assert second.metrics["accuracy"] < first.metrics["accuracy"] - 0.03
    assert demo.accuracy == {"1.0": first.metrics["accuracy"], "1.1": second.metrics["accuracy"]}
    assert second.flagged and not first.flagged
    trained_on = {m.version: m.pins.get(role="train").version for m in (first, second)}
    report = change_report(trained_on["1.0"], trained_on["1.1"])
    labels = next(table for table in report.tables if table.path == "labels.csv").labels
    assert labels is not None
    # Vendor B read 1 as 7, 9 as 4 and 3 as 8 in batch 2: past the line pages flag.
    assert labels.counts_b["1"] < labels.counts_a["1"] and labels.counts_b["7"] > labels.counts_a["7"]
    assert labels.counts_b["9"] < labels.counts_a["9"] and labels.counts_b["4"] > labels.counts_a["4"]
    assert labels.counts_b["3"] < labels.counts_a["3"] and labels.counts_b["8"] > labels.counts_a["8"]
    assert labels.psi > 0.1, labels.psi
    assert sum(labels.counts_a.values()) == sum(labels.counts_b.values()) == 1791

    # A rollback to the split 1.0 was trained on waits for an approver.
    request = RollbackRequest.objects.get(pk=demo.rollback_id)
    assert request.state == RollbackRequest.State.REQUESTED
    assert request.requester_name == "steward"
    assert request.target == trained_on["1.0"]
    assert request.head == Branch.objects.get(dataset__name="digits", name="main").head

    # Tiers and cost: the raw scans, untouched for weeks, went warm.
    assert {"hot", "warm"} <= set(Pack.objects.values_list("tier", flat=True))
    costs = cost_report()
    assert costs.tiers.stored_bytes["warm"] > 0 and costs.tiers.stored_bytes["hot"] > 0
    # Deduplication and compression store less than the versions hold.
    assert costs.logical_bytes > 2 * costs.stored_bytes
    golden = Version.objects.get(dataset__name="breast-cancer", golden=True)
    assert golden.semver.startswith("2.0.")  # renaming every column is a major change

    # One user per role, each able to sign in and read the catalog.
    assert set(demo.users) == {"steward", "approver", "viewer"}
    for username, password in demo.users.items():
        assert client.login(username=username, password=password), username
        assert client.get("/datasets/digits/").status_code == 200
        client.logout()

    # The demo is never built beside existing data.
    before = Version.objects.count()
    with pytest.raises(DemoError, match="already holds datasets"):
        demo_build(password_file=tmp_path / "again.txt")
    assert Version.objects.count() == before


def test_setup_prints_every_account_on_each_start(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    Dataset.objects.create(name="someone-elses")  # not empty: no demo is built
    out = io.StringIO()
    call_command("strata_setup", "--demo", stdout=out)
    assert "admin" in out.getvalue() and "Building the demo" not in out.getvalue()
    assert Dataset.objects.count() == 1


def test_the_run_command_brings_the_demo_up_on_the_embedded_defaults(tmp_path):
    """`make run`'s script on a fresh var/ folder: SQLite, a local store and the
    filesystem broker, whatever the environment of the test run points at."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "STORAGE_URL", "CELERY_BROKER_URL", "CELERY_TASK_DEFAULT_QUEUE")
    }
    port = free_port()
    env.update(STRATA_VAR_DIR=str(tmp_path / "var"), PORT=str(port))
    log = tmp_path / "run.log"
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "run.sh")],
        cwd=str(ROOT),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        output = log.read_text()
        passwords = dict(re.findall(r"^\s+(admin|steward|approver|viewer)\s+(\S+)", output, re.MULTILINE))
        assert set(passwords) == {"admin", "steward", "approver", "viewer"}, output
        # Sign in as the viewer and find the demo's datasets in the catalog.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        login_page = opener.open(f"http://127.0.0.1:{port}/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
        form = f"csrfmiddlewaretoken={token}&username=viewer&password={passwords['viewer']}".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/accounts/login/",
            data=form,
            headers={"Referer": f"http://127.0.0.1:{port}/"},
        )
        catalog = opener.open(request).read().decode()
        for name in ("digits-raw", "digits", "breast-cancer"):
            assert f"/datasets/{name}/" in catalog, catalog[:2000]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
