"""A NUL character cannot be stored (PostgreSQL refuses it in text and JSON): any
request holding one is bad input, answered with one sentence, never a 500."""

from __future__ import annotations

import json

from catalog.models import Dataset
from catalog.services.tokens import token_create


def _bearer(user):
    _, secret = token_create(user=user, name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_the_api_refuses_a_nul_in_the_query_or_the_json_body(client, personas):
    headers = _bearer(personas["alice"])
    answer = client.get("/api/v1/datasets", {"q": "rev\x00iews"}, **headers)
    assert answer.status_code == 400 and "NUL character" in answer.json()["error"]
    answer = client.post(
        "/api/v1/datasets",
        data=json.dumps({"name": "reviews", "description": "a\u0000b"}),
        content_type="application/json",
        **headers,
    )
    assert answer.status_code == 400 and "NUL character" in answer.json()["error"]
    assert not Dataset.objects.exists()


def test_pages_refuse_a_nul_in_a_search_or_a_form(client, personas):
    client.force_login(personas["alice"])
    answer = client.get("/", {"q": "\x00"})
    assert answer.status_code == 400 and "NUL character" in answer.content.decode()
    answer = client.post("/new/", {"name": "reviews", "description": "a\x00b"})
    assert answer.status_code == 400
    assert not Dataset.objects.exists()


def test_a_search_without_one_still_works(client, personas):
    client.force_login(personas["alice"])
    assert client.get("/", {"q": "reviews"}).status_code == 200
