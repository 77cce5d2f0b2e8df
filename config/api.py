"""The REST API at /api/v1/: one NinjaAPI instance; each app adds its routers.

Authentication is a personal token (``Authorization: Bearer strata_…``) or the
browser's session (with its CSRF token). Every error is a 4xx (or 5xx) with a JSON
body ``{"error": "one sentence"}``; services decide what is allowed.
"""

from __future__ import annotations

import logging
import uuid

from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from catalog.errors import StrataError
from catalog.services.tokens import token_authenticate

logger = logging.getLogger(__name__)


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        user = token_authenticate(token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(
    title="Strata API",
    version="1",
    urls_namespace="api",
    auth=[TokenAuth(), SessionAuth()],
    openapi_url="/schema",
    docs_url="/docs",
)


def _error(request: HttpRequest, message: str, status: int):
    return api.create_response(request, {"error": message}, status=status)


@api.exception_handler(StrataError)
def strata_error(request: HttpRequest, error: StrataError):
    """Every service error, answered as its class says: its status, its sentence,
    its kind where the body names it, and its headers (Retry-After for a restore)."""
    body: dict[str, object] = {"error": str(error)}
    if error.body_flag:
        body[error.kind] = True
    response = api.create_response(request, body, status=error.http_status)
    for header, value in error.response_headers().items():
        response[header] = value
    return response


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, error: ValidationError):
    first = error.errors[0] if error.errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "payload"))
    message = first.get("msg", "invalid input")
    return _error(request, f"{where}: {message}." if where else f"{message}.", 422 if where else 400)


@api.exception_handler(AuthenticationError)
def authentication_error(request: HttpRequest, error: AuthenticationError):
    return _error(request, "authentication required: send a valid, unrevoked API token.", 401)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, error: HttpError):
    return _error(request, str(error), error.status_code)


@api.exception_handler(Exception)
def internal_error(request: HttpRequest, error: Exception):
    reference = uuid.uuid4().hex[:12]
    logger.exception("internal error %s on %s %s", reference, request.method, request.path)
    return _error(request, f"something went wrong, reference {reference}.", 500)


# Each app's endpoints, registered last so the handlers above cover them.
from lineage.api import router as lineage_router  # noqa: E402

api.add_router("/", lineage_router)

from registry.api import router as registry_router  # noqa: E402

api.add_router("/", registry_router)

from changes.api import router as changes_router  # noqa: E402

api.add_router("/", changes_router)

from catalog.api import register as register_catalog  # noqa: E402

register_catalog(api)
