"""The API in process, as one persona (or anonymous), speaking JSON."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client as DjangoClient

from catalog.services.remote.verification import upload_verify


class Api:
    """The API in process, as one persona (or anonymous), speaking JSON."""

    def __init__(self, token: str | None) -> None:
        self.client = DjangoClient()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def _send(self, method: str, path: str, body=None, /, raw: bytes | None = None, headers=None, **params):
        url = "/api/v1" + path
        if method == "get":
            return self.client.get(url, params or None, headers=headers, **self.headers)
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return getattr(self.client, method)(
            url, data=data, content_type="application/json", headers=headers, **self.headers
        )

    def get(self, path: str, body=None, /, **params):
        return self._send("get", path, **params)

    def post(self, path: str, body=None, *, follow_verification: bool = True, **kwargs):
        response = self._send("post", path, body, **kwargs)
        if follow_verification and response.status_code == 202 and "poll" in response.json():
            return self.finish_verification(response.json()["upload"])
        return response

    def finish_verification(self, upload_id: str):
        """Do what the worker does for a commit answered 202, then answer as the
        commit would have: the commit body, or the refusal the client would get.

        In process, the test's transaction never commits, so the task queued on
        commit never runs; the worker's service is called in its place. That a
        real worker does this is shown through a live server in test_remote.py."""
        upload_verify(upload_id=upload_id)
        state = self.get(f"/uploads/{upload_id}")
        if state.status_code != 200:
            return state
        commit = state.json()["commit"]
        return _Answer(201 if commit["created"] else 200, commit)

    def patch(self, path: str, body=None, **kwargs):
        return self._send("patch", path, body, **kwargs)

    def put(self, path: str, body=None, **kwargs):
        return self._send("put", path, body, **kwargs)

    def delete(self, path: str, body=None, /, **kwargs):
        return self._send("delete", path, **kwargs)


class _Answer:
    """A commit's answer, made from the upload's state after verification."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code = status_code
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body
