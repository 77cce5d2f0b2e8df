"""`Idempotency-Key` on create requests: a retried request gets the first answer.

A pipeline that loses the response to a commit (a timeout, a dropped connection)
cannot know whether the version was made. Retrying with the same key is always
safe: the first request's status and body are stored with the key, in the same
transaction as the work, and returned again — the same version, not a second one.

The work and the key commit together or not at all, so a request that failed (a
4xx, a crash) leaves no key behind and may simply be retried. Two requests with the
same key at once are serialised by the key's unique constraint: the second waits
for the first, then replays its answer. Reusing a key for a different request (other
path or body) is refused with 422, as Stripe and the IETF draft do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from ninja import Schema
from ninja.errors import HttpError
from ninja.responses import NinjaJSONEncoder

from catalog.api.common import user_of
from catalog.models import IdempotencyKey

HEADER = "Idempotency-Key"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")


def _fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.path):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(request.body)
    return digest.hexdigest()


Shapes = type[Schema] | dict[int, type[Schema]]


def _as_json(schema: Shapes, status: int, body: Any) -> Any:
    """The body as the response schema documents it (one schema, or one per status),
    in JSON types (to be stored)."""
    shape = schema[status] if isinstance(schema, dict) else schema
    return shape.model_validate(body).model_dump(mode="json")


def _response(status: int, body: Any, replayed: bool = False) -> JsonResponse:
    response = JsonResponse(body, status=status, encoder=NinjaJSONEncoder, safe=False)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def run_idempotent(request: HttpRequest, schema: Shapes, work: Callable[[], tuple[int, Any]]) -> JsonResponse:
    """Run `work` (which returns status and body, shaped by `schema`) once per Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is None:
        status, body = work()
        return _response(status, _as_json(schema, status, body))
    if not _KEY_RE.match(key):
        raise HttpError(400, f"the {HEADER} header must be 1 to 200 visible ASCII characters.")
    user = user_of(request)
    fingerprint = _fingerprint(request)
    for attempt in range(2):
        try:
            with transaction.atomic():
                stored = IdempotencyKey.objects.filter(user=user, key=key).first()
                if stored is not None:
                    if stored.request_hash != fingerprint:
                        raise HttpError(
                            422, f"the {HEADER} {key!r} was used for a different request; use a new key."
                        )
                    return _response(stored.status_code, stored.response, replayed=True)
                # The key is claimed before the work, so that a concurrent request
                # with it waits on the unique index instead of doing the work too.
                claimed = IdempotencyKey.objects.create(
                    user=user, key=key, request_hash=fingerprint, status_code=0, response={}
                )
                status, body = work()
                body = _as_json(schema, status, body)
                claimed.status_code, claimed.response = status, body
                claimed.save(update_fields=["status_code", "response"])
                return _response(status, body)
        except IntegrityError:
            # Another request with this key committed first; the next pass replays it.
            if attempt:
                raise
    raise AssertionError("unreachable")
