"""Prometheus metrics at /metrics: request durations by URL pattern, the store's
bytes pushed, pulled and held per tier, and a worker's task durations and failures."""

from __future__ import annotations

import urllib.error

import pytest
from django.db.models import Sum
from django.test import override_settings
from django.urls import reverse

from catalog.models import Chunk, Pack
from catalog.services.pull import version_pull
from catalog.services.versions import version_push
from tests.factories.datasets import push
from tests.factories.files import write_random
from tests.factories.metrics import sample
from tests.workers import CeleryWorker as Worker
from tests.workers import wait_until, worker_environment

PUSHED = ("strata_store_transferred_bytes_total", {"direction": "push"})
PULLED = ("strata_store_transferred_bytes_total", {"direction": "pull"})


def _moved(samples, which) -> float:
    name, labels = which
    return sample(samples, name, **labels)


@pytest.fixture
def local_store(settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"


def test_a_request_is_counted_under_its_url_pattern(client, personas, local_store, tmp_path, scrape):
    push(tmp_path, "reviews", {"a.csv": "id\n1\n"}, user=personas["alice"])
    client.force_login(personas["alice"])
    page = reverse("catalog:dataset_detail", args=["reviews"])
    labels = {"view": "/datasets/<str:name>/", "method": "GET", "status": "2xx"}
    client.get(page)
    before = scrape()
    assert client.get(page).status_code == 200
    after = scrape()
    count = "strata_http_request_duration_seconds_count"
    assert sample(after, count, **labels) == sample(before, count, **labels) + 1
    # Every bucket up to +Inf is there, so p50/p95/p99 can be read.
    bucket = "strata_http_request_duration_seconds_bucket"
    assert sample(after, bucket, le="+Inf", **labels) == sample(after, count, **labels)
    assert sample(after, bucket, le="0.005", **labels) <= sample(after, bucket, le="10.0", **labels)
    # A path no pattern matches is one series, whatever the path.
    client.get("/no/such/page/1")
    client.get("/no/such/page/2")
    unmatched = {"view": "unmatched", "method": "GET", "status": "4xx"}
    assert sample(scrape(), count, **unmatched) == sample(after, count, **unmatched) + 2


def test_push_and_pull_count_the_bytes_stored_and_read(personas, store_url, tmp_path, scrape, client):
    source = tmp_path / "source"
    write_random(source / "a.bin", 300_000, seed=1)
    write_random(source / "b" / "c.bin", 200_000, seed=2)
    before = scrape()
    result = version_push(path=str(source), dataset_name="noise", user=personas["alice"])
    after_push = scrape()
    # A fresh store: every pack in it is one this push wrote.
    pack_bytes = Pack.objects.aggregate(total=Sum("size"))["total"]
    assert result.packs >= 1 and pack_bytes > 500_000  # random bytes do not compress
    assert _moved(after_push, PUSHED) - _moved(before, PUSHED) == pack_bytes
    assert _moved(after_push, PULLED) == _moved(before, PULLED)

    version_pull(version=result.version, dest=str(tmp_path / "pulled"))
    after_pull = scrape()
    chunk_bytes = Chunk.objects.aggregate(total=Sum("stored_length"))["total"]
    assert _moved(after_pull, PULLED) - _moved(after_push, PULLED) == chunk_bytes
    assert _moved(after_pull, PUSHED) == _moved(after_push, PUSHED)

    # A download reads the same bytes out of the store.
    client.force_login(personas["alice"])
    tar = client.get(reverse("catalog:version_tar", args=["noise", result.version.semver]))
    b"".join(tar.streaming_content)
    assert _moved(scrape(), PULLED) - _moved(after_pull, PULLED) == chunk_bytes


def test_a_remote_push_and_pull_count_what_the_client_moved(
    request, personas, store_url, live_server, queue, redis_url, settings, tmp_path, scrape
):
    from catalog.services.tokens import token_create
    from strata_client.client import Client

    # The worker that verifies and commits the push.
    verifier = Worker(
        worker_environment(settings=settings, tmp_path=tmp_path, queue=queue, redis_url=redis_url),
        tmp_path / "verifier.log",
    )
    request.addfinalizer(verifier.stop)
    _, secret = token_create(user=personas["alice"], name="metrics")
    remote = Client(live_server.url, secret, cache_dir=str(tmp_path / "client-cache"))
    write_random(tmp_path / "source" / "part.bin", 400_000, seed=3)
    before = scrape()
    pushed = remote.push(str(tmp_path / "source"), "remote-noise")
    after_push = scrape()
    assert pushed.uploaded_bytes == Pack.objects.aggregate(total=Sum("size"))["total"]
    assert _moved(after_push, PUSHED) - _moved(before, PUSHED) == pushed.uploaded_bytes

    pulled = remote.pull("remote-noise", str(tmp_path / "pulled"))
    assert pulled.bytes_fetched >= 400_000  # random bytes are stored as they are
    assert _moved(scrape(), PULLED) - _moved(after_push, PULLED) == pulled.bytes_fetched


def test_store_bytes_per_tier_are_the_packs(personas, local_store, tmp_path, scrape):
    for index in range(3):
        write_random(tmp_path / f"v{index}" / "data.bin", 50_000 * (index + 1), seed=10 + index)
        version_push(path=str(tmp_path / f"v{index}"), dataset_name="tiers", user=personas["alice"])
    packs = list(Pack.objects.order_by("size"))
    assert len(packs) == 3
    Pack.objects.filter(id=packs[0].id).update(tier=Pack.Tier.WARM)
    Pack.objects.filter(id=packs[1].id).update(tier=Pack.Tier.COLD)

    samples = scrape()
    expected = {"hot": [packs[2]], "warm": [packs[0]], "cold": [packs[1]]}
    for tier, members in expected.items():
        assert sample(samples, "strata_store_bytes", tier=tier) == sum(pack.size for pack in members)
        assert sample(samples, "strata_store_packs", tier=tier) == len(members)
    Pack.objects.filter(tier=Pack.Tier.COLD).update(tier=Pack.Tier.HOT)
    assert sample(scrape(), "strata_store_packs", tier="cold") == 0  # a tier emptied still shows


def test_a_worker_reports_task_durations_and_failures(worker):
    from catalog.tasks import verify_store
    from lifecycle.tasks import retention_apply

    before = worker.metrics()
    duration = "strata_celery_task_duration_seconds_count"
    verify_store.delay()
    retention_apply.delay(10**9)  # no such run: the task raises

    def both_ran():
        samples = worker.metrics()
        succeeded = sample(samples, duration, task="catalog.tasks.verify_store", outcome="success")
        failed = sample(samples, duration, task="lifecycle.tasks.retention_apply", outcome="failure")
        return samples if succeeded and failed else None

    samples = wait_until(both_ran, what="both tasks")
    failures = "strata_celery_task_failures_total"
    assert sample(samples, failures, task="lifecycle.tasks.retention_apply") == 1
    assert sample(before, failures, task="lifecycle.tasks.retention_apply") == 0
    assert sample(samples, failures, task="catalog.tasks.verify_store") == 0
    # The store's tiers are the web's to report, once, not every worker's.
    assert not any(name == "strata_store_bytes" for name, _ in samples)
    # The worker's port asks for the same token as the web's /metrics.
    with pytest.raises(urllib.error.HTTPError) as refused:
        worker.metrics(token=None)
    assert refused.value.code == 401


def test_metrics_ask_for_the_token_when_one_is_set(client, db):
    assert client.get("/metrics").status_code == 200  # open by default
    with override_settings(STRATA_METRICS_TOKEN="scrape-secret"):
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
        assert "token" in refused.json()["error"]
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Basic scrape-secret"}).status_code == 401
        allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert allowed.status_code == 200 and b"strata_http_request_duration_seconds" in allowed.content


def test_the_site_root_is_labelled_by_its_path(client, personas):
    from prometheus_client.parser import text_string_to_metric_families

    client.force_login(personas["bob"])
    assert client.get("/").status_code == 200
    families = text_string_to_metric_families(client.get("/metrics").content.decode())
    views = {
        sample.labels["view"]
        for family in families
        if family.name == "strata_http_request_duration_seconds"
        for sample in family.samples
    }
    # Labelled by its route, "/", not by its view's name.
    assert "/" in views and "/catalog:dataset_list" not in views
