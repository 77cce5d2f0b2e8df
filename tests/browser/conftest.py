"""Browser tests: Playwright drives Debian's Chromium against a live server.

Playwright's sync API keeps an event loop running in the test's thread, and Django
refuses database calls from such a thread unless told that this one is safe: the
tests make their data through the services in that same thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("STRATA_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent.parent / "output"
# Without the background-networking flags Chromium keeps calling home from a
# machine that has no network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def store(settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"


@pytest.fixture
def page(chromium, live_server, store):
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 860}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(f"{username}-password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save what the page shows now under tests/output/, to be looked at."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 1000
    return path


@pytest.fixture(autouse=True)
def roles(transactional_db):
    """The role groups a migration makes: a live-server test empties the tables
    after each test, so they are made again before the personas need them."""
    from django.contrib.auth.models import Group

    from catalog.permissions import ROLES

    for name in ROLES:
        Group.objects.get_or_create(name=name)
    # The catalog caches its filter menus per user id, and ids repeat between tests.
    from django.core.cache import cache

    cache.clear()
