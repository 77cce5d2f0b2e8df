"""Every error says once how it is answered: its HTTP status, its exit code and its
kind. The API, the pages and the command line read those, so a missing thing is a
404 with its one sentence wherever it is asked for."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

from catalog.errors import RestoreInProgress, StrataError, UserError
from strata_store.errors import StoreError

PACKAGES = ("strata_store", "catalog", "lineage", "cards", "lifecycle", "registry", "governance", "ops")


def _all_subclasses(base: type) -> list[type]:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *_all_subclasses(cls)]
    return found


def _import_everything() -> None:
    """Import every module of the apps, so that every error class defined anywhere
    is a known subclass."""
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)


@pytest.mark.parametrize("base", [StrataError, StoreError])
def test_every_error_class_has_an_http_status_an_exit_code_and_a_kind(base):
    _import_everything()
    classes = [base, *_all_subclasses(base)]
    assert len(classes) > 3
    for cls in classes:
        assert 400 <= cls.http_status <= 599, cls
        assert cls.exit_code in (1, 2, 3), cls
        assert re.fullmatch(r"[a-z_]+", cls.kind), cls


def test_a_user_error_is_a_4xx_and_exits_2_and_a_restore_is_a_503_and_exits_3():
    _import_everything()
    for cls in [UserError, *_all_subclasses(UserError)]:
        assert 400 <= cls.http_status < 500 and cls.exit_code == 2, cls
    assert (RestoreInProgress.http_status, RestoreInProgress.exit_code) == (503, 3)


def test_a_missing_dataset_is_a_404_with_one_sentence_in_the_api_and_on_the_page(client, personas):
    client.force_login(personas["bob"])
    answer = client.get("/api/v1/datasets/nope")
    assert answer.status_code == 404
    assert answer.json() == {"error": "there is no dataset named 'nope'."}
    page = client.get("/datasets/nope/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
    assert "There is no dataset named &#x27;nope&#x27;." in page.content.decode()


def test_a_refusal_on_a_page_without_a_form_is_a_400_page_with_its_sentence(client, personas):
    client.force_login(personas["bob"])
    page = client.get("/lineage/nodes/987654/", {"depth": "0"})
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
    assert "Depth must be a whole number from 1 to 5" in page.content.decode()


def test_an_htmx_request_gets_the_sentence_alone_with_the_status(client, personas):
    client.force_login(personas["bob"])
    answer = client.get("/lineage/nodes/987654/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 404
    text = answer.content.decode()
    assert "There is no lineage node 987654." in text and "<html" not in text
