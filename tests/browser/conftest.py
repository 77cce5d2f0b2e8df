"""Browser tests: Playwright drives Debian's Chromium against a live server.

Playwright's sync API keeps an event loop running in the test's thread, and Django
refuses database calls from such a thread unless told that this one is safe: the
tests make their data through the services in that same thread.
"""

from __future__ import annotations

import os

import pytest

from tests.factories.browser import CHROMIUM, CHROMIUM_ARGS
from tests.factories.personas import role_groups_ensure

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


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


@pytest.fixture(autouse=True)
def roles(transactional_db):
    """The role groups a migration makes: a live-server test empties the tables
    after each test, so they are made again before the personas need them."""
    role_groups_ensure()
    # The catalog caches its filter menus per user id, and ids repeat between tests.
    from django.core.cache import cache

    cache.clear()
