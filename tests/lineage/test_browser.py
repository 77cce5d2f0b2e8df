"""The lineage page in a real browser (Debian's Chromium, driven by Playwright):
it draws, a click on a node shows its details, and it works without JavaScript.
Screenshots go to tests/output/ for a person to look at."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lineage.services import runs as services

OUTPUT = Path(__file__).resolve().parents[1] / "output"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True)
def roles(transactional_db):
    """The live server's tests flush the database, role groups made by a
    migration included: make them again before the personas join them."""
    from django.contrib.auth.models import Group

    for name in ("viewer", "steward", "approver", "admin"):
        Group.objects.get_or_create(name=name)


def in_browser(live_server, session: str, work, *, javascript: bool = True) -> None:
    """Run `work(page)` in Chromium, on a thread of its own: Playwright's sync
    API refuses a thread that already runs an event loop, and other browser
    tests may keep one open in the test thread for the whole session."""
    from playwright.sync_api import sync_playwright

    def drive() -> None:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(
                    viewport={"width": 1440, "height": 900}, java_script_enabled=javascript
                )
                context.set_default_timeout(15_000)
                context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
                work(context.new_page())
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(drive).result()


@pytest.fixture
def session(personas, client) -> str:
    client.force_login(personas["bob"])
    return client.cookies["sessionid"].value


@pytest.fixture
def pipeline(personas, make_version):
    alice = personas["alice"]
    for name, stage in [
        ("reviews-raw", "raw"),
        ("reviews", "cleaned"),
        ("reviews-dedup", "cleaned"),
        ("reviews-train", "split"),
        ("reviews-test", "split"),
    ]:
        make_version(name, stage=stage)
    services.run_record(
        user=alice,
        name="crawl-reviews",
        step="collection",
        inputs=["https://crawl.example.org/reviews/2024-06/", "s3://vendor-drop/reviews.parquet"],
        outputs=["reviews-raw@1.0.0"],
    )
    services.run_record(
        user=alice,
        name="filter-lang",
        step="cleaning",
        params={"lang": "en", "min_chars": 20, "threshold": 0.8},
        code="https://git.example.org/data/filters#3f2a9c1",
        inputs=["reviews-raw@1.0.0"],
        outputs=["reviews@1.0.0"],
    )
    dedup = services.run_record(
        user=alice,
        name="dedup-minhash",
        step="dedup",
        params={"threshold": 0.85, "shingles": 5},
        code="https://git.example.org/data/dedup#9e1f0aa",
        inputs=["reviews@1.0.0"],
        outputs=["reviews-dedup@1.0.0"],
    )
    services.run_record(
        user=alice,
        name="split-by-hash",
        step="split",
        params={"test": 0.1, "key": "review_id"},
        inputs=["reviews-dedup@1.0.0"],
        outputs=["reviews-train@1.0.0", "reviews-test@1.0.0"],
    )
    return dedup.outputs[0]


def test_the_lineage_page_draws_and_a_click_shows_a_run(live_server, session, pipeline):
    OUTPUT.mkdir(exist_ok=True)

    def work(page):
        page.goto(f"{live_server.url}/lineage/nodes/{pipeline.pk}/?depth=3")
        assert page.locator("svg.lineage-graph").is_visible()
        assert page.locator("svg.lineage-graph a.node").count() == 7
        page.screenshot(path=str(OUTPUT / "lineage-page.png"), full_page=True)
        page.locator("a.node", has_text="dedup-minhash").click()
        panel = page.locator("aside.panel")
        panel.get_by_text("shingles").wait_for()
        assert "git.example.org/data/dedup#9e1f0aa" in panel.inner_text()
        page.screenshot(path=str(OUTPUT / "lineage-selected-run.png"), full_page=True)
        page.get_by_label("Depth").select_option("1")
        page.get_by_text("Upstream", exact=True).click()
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**direction=upstream**")
        assert page.locator("svg.lineage-graph a.node").count() == 2

    in_browser(live_server, session, work)


def test_the_page_reads_without_javascript(live_server, session, pipeline):
    def work(page):
        page.goto(f"{live_server.url}/lineage/nodes/{pipeline.pk}/")
        page.locator("a.node", has_text="dedup-minhash").click()
        page.wait_for_url("**select=**")
        assert "shingles" in page.locator("aside.panel").inner_text()

    in_browser(live_server, session, work, javascript=False)


def _reviews(positive: int, negative: int) -> str:
    labels = ["positive"] * positive + ["negative"] * negative
    return "".join(
        f'{{"id": {i}, "text": "review {i}", "label": "{label}"}}\n' for i, label in enumerate(labels)
    )


@pytest.fixture
def models(personas, make_version):
    """Raw reviews crawled, cleaned, split; fraud@3.0 trained on the first split,
    fraud@3.1 on a second one whose labels shifted, with a worse AUC."""
    from registry.services.training import training_record

    alice = personas["alice"]
    make_version("reviews-raw", stage="raw")
    make_version("reviews", stage="labelled")
    make_version("reviews-train", stage="split", content=_reviews(50, 50))
    make_version("reviews-test", stage="split", content=_reviews(10, 10))
    services.run_record(
        user=alice,
        name="crawl-reviews",
        step="collection",
        inputs=["https://crawl.example.org/reviews/2024-06/"],
        outputs=["reviews-raw@1.0.0"],
    )
    services.run_record(
        user=alice,
        name="filter-lang",
        step="cleaning",
        params={"lang": "en"},
        inputs=["reviews-raw@1.0.0"],
        outputs=["reviews@1.0.0"],
    )
    services.run_record(
        user=alice,
        name="split-by-hash",
        step="split",
        inputs=["reviews@1.0.0"],
        outputs=["reviews-train@1.0.0", "reviews-test@1.0.0"],
    )
    training_record(
        user=alice,
        model="fraud",
        version="3.0",
        datasets={"train": "reviews-train@main", "eval": "reviews-test@main"},
        metrics={"auc": 0.912, "log_loss": 0.231, "f1": 0.84},
        params={"lr": 0.05, "depth": 8},
        code="https://git.example.org/ml/fraud#4c1d2e9",
        artifact="s3://models/fraud/3.0/model.onnx",
    )
    make_version("reviews-train", stage="split", content=_reviews(80, 20))
    services.run_record(
        user=alice,
        name="split-by-hash",
        step="split",
        params={"oversample": "positive"},
        inputs=["reviews@1.0.0"],
        outputs=["reviews-train@1.1.0"],
    )
    training_record(
        user=alice,
        model="fraud",
        version="3.1",
        datasets={"train": "reviews-train@main", "eval": "reviews-test@main"},
        metrics={"auc": 0.861, "log_loss": 0.262, "f1": 0.85},
        params={"lr": 0.05, "depth": 8},
        code="https://git.example.org/ml/fraud#77aa0b1",
        artifact="s3://models/fraud/3.1/model.onnx",
    )


def test_the_model_page_and_the_comparison_in_a_browser(live_server, session, models):
    OUTPUT.mkdir(exist_ok=True)

    def work(page):
        page.goto(f"{live_server.url}/models/fraud/versions/3.1/")
        assert page.get_by_role("alert").filter(has_text="Metric regression").is_visible()
        trained = page.locator("table.pins").first
        assert "reviews-train" in trained.inner_text() and "1.1.0" in trained.inner_text()
        graph = page.locator("svg.lineage-graph")
        assert graph.is_visible()
        # Up to the raw source: crawl -> collect -> raw -> filter -> reviews -> split -> train -> model.
        assert graph.locator("a.node", has_text="crawl.example.org").count() == 1
        assert graph.locator("a.node-model").count() == 1
        page.screenshot(path=str(OUTPUT / "model-page.png"), full_page=True)
        page.get_by_role("link", name="Compare with 3.0").click()
        page.wait_for_url("**/models/compare/**")
        shift = page.locator(".label-shift").first
        assert "positive" in shift.inner_text() and "+30" in shift.inner_text()
        page.screenshot(path=str(OUTPUT / "model-compare.png"), full_page=True)

    in_browser(live_server, session, work)
