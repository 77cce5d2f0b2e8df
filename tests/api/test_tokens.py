"""Personal API tokens: made on the account page or the command line, the secret
shown once and stored only as a hash, revoked with a click, last use recorded."""

from __future__ import annotations

import hashlib
import io
import json

from django.core.management import call_command
from django.test import Client as DjangoClient

from catalog.models import ApiToken, AuditEvent


def signed_in(user) -> DjangoClient:
    client = DjangoClient()
    client.force_login(user)
    return client


def test_the_token_page_shows_a_new_secret_once_and_stores_only_its_hash(personas):
    page = signed_in(personas["bob"])
    assert page.get("/account/tokens/").status_code == 200
    made = page.post(
        "/account/tokens/", {"action": "create", "name": "nightly training", "expires_days": "30"}
    )
    assert made.status_code == 200 and "no-store" in made["Cache-Control"]
    shown = made.content.decode()
    token = ApiToken.objects.get(user=personas["bob"])
    secret = shown.split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("strata_") and token.prefix in secret
    assert (
        token.secret_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in token.secret_hash
    )
    assert token.expires is not None and "nightly training" in shown
    assert secret not in page.get("/account/tokens/").content.decode()  # once only
    # The secret works, and its use is recorded.
    api = DjangoClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/me").json()["username"] == "bob"
    token.refresh_from_db()
    assert token.last_used is not None
    assert (
        "never"
        not in page.get("/account/tokens/").content.decode().split("nightly training")[1].split("</tr>")[0]
    )


def test_a_new_token_secret_is_never_written_to_the_session(personas):
    page = signed_in(personas["bob"])
    made = page.post("/account/tokens/", {"action": "create", "name": "ci", "expires_days": "30"})
    secret = made.content.decode().split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("strata_")
    assert secret not in json.dumps(dict(page.session.items()), default=str)


def test_a_token_is_revoked_from_the_page_and_stops_working(personas, tokens):
    page = signed_in(personas["carol"])
    token = ApiToken.objects.get(user=personas["carol"])
    response = page.post("/account/tokens/", {"action": "revoke", "token": str(token.pk)}, follow=True)
    assert "is revoked" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked is not None
    assert AuditEvent.objects.filter(action="token.revoke", object_id=str(token.pk)).exists()
    api = DjangoClient(HTTP_AUTHORIZATION=f"Bearer {tokens['carol']}")
    assert api.get("/api/v1/me").status_code == 401


def test_nobody_revokes_another_users_token_or_makes_a_nameless_one(personas, tokens):
    alices = ApiToken.objects.get(user=personas["alice"])
    page = signed_in(personas["dave"])
    refused = page.post("/account/tokens/", {"action": "revoke", "token": str(alices.pk)})
    assert refused.status_code == 400 and f"no token {alices.pk}" in refused.content.decode()
    alices.refresh_from_db()
    assert alices.revoked is None
    nameless = page.post("/account/tokens/", {"action": "create", "name": "  ", "expires_days": "30"})
    assert nameless.status_code == 400 and "needs a name" in nameless.content.decode()
    assert ApiToken.objects.filter(user=personas["dave"]).count() == 1  # the fixture's own
    assert DjangoClient().get("/account/tokens/").status_code == 302  # sign in first


def test_the_command_line_makes_a_token_and_prints_it_once(personas):
    out = io.StringIO()
    call_command(
        "strata", "token", "create", "alice", "--name", "ci", "--expires-days", "7", "--json", stdout=out
    )
    printed = json.loads(out.getvalue())
    token = ApiToken.objects.get(user=personas["alice"], name="ci")
    assert token.secret_hash == hashlib.sha256(printed["token"].encode()).hexdigest()
    assert printed["expires"] is not None
    api = DjangoClient(HTTP_AUTHORIZATION=f"Bearer {printed['token']}")
    assert api.get("/api/v1/me").json() == {"username": "alice", "roles": ["steward"]}
