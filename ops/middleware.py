"""The request middleware: a request id, the log context, one log line and one
histogram observation per request.

It comes first in MIDDLEWARE, so it times everything the others do and every log
line of the request, theirs included, carries the request id.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse

from catalog.errors import IntegrityFailure
from ops import context, metrics

# A stable name operators can route or filter the access log by.
logger = logging.getLogger("strata.request")

REQUEST_ID_HEADER = "X-Request-ID"
# An id from a proxy or a client is kept only if it is short and made of characters
# that are safe in a header, a log line and a URL; otherwise one is made here.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")
# A URL argument right after one of these path segments names a dataset or one of
# its versions (the dashboard's `version_id`, the API's `version`, lineage's
# `versions/<version_id>`). Under `models/` a version is a model's, not a dataset's.
_KWARG = re.compile(r"[<{](?:[^:>}]+:)?(?P<name>[^>}]+)[>}]")


def request_id_from(header: str | None) -> str:
    """The incoming X-Request-ID if it is valid, else a new random id."""
    if header and _VALID_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def url_context(route: str, kwargs: Mapping[str, Any]) -> dict[str, str]:
    """The dataset and version a URL pattern names, read from its route."""
    found: dict[str, str] = {}
    previous = ""
    under_models = False
    for segment in route.split("/"):
        match = _KWARG.fullmatch(segment)
        if match is None:
            previous = segment
            under_models = under_models or segment == "models"
            continue
        value = kwargs.get(match["name"])
        if isinstance(value, str):
            if previous == "datasets":
                found["dataset"] = value
            elif previous == "versions" and not under_models:
                found["version"] = value
        previous = ""
    return found


def view_label(request: HttpRequest) -> str:
    """The URL pattern a request matched (bounded: never the raw path)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    # The site's root pattern is the empty route: "/" like any other path.
    return "/" + match.route


def _username(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return str(user.get_username())
    return ""


@contextlib.contextmanager
def _bound(fields: Mapping[str, str]) -> Iterator[None]:
    """The request's log context again, for work done after the view returned."""
    token = context.bind(**fields)
    try:
        yield
    finally:
        context.reset(token)


def _is_probe(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return bool(match is not None and getattr(match.func, "strata_probe", False))


class RequestContextMiddleware:
    """Sets the request id and log context; logs and measures each request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        token = context.bind(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            if response.streaming:
                # Recorded when the stream ends: its status is only known then (a
                # chunk that fails verification half-way stops it with a 502).
                content = response.streaming_content  # type: ignore[attr-defined]
                response.streaming_content = self._streamed(  # type: ignore[attr-defined]
                    request, response, content, started=started, fields=dict(context.current())
                )
            else:
                self._record(request, response.status_code, time.perf_counter() - started)
            return response
        finally:
            # Back to what was there before, whatever process_view added.
            context.reset(token)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        # Probes touch nothing: not the session, so not the database.
        if getattr(view_func, "strata_probe", False):
            return None
        fields = url_context(getattr(request.resolver_match, "route", "") or "", view_kwargs)
        # Every middleware has run, so the session's user is known; an API token's
        # user is set later, in the view, and is picked up in _record.
        context.bind(user=_username(request), **fields)
        return None

    def _streamed(
        self,
        request: HttpRequest,
        response: HttpResponse,
        content: Iterator[bytes],
        *,
        started: float,
        fields: Mapping[str, str],
    ) -> Iterator[bytes]:
        """`content`, recorded once it is sent (the duration is to its last byte),
        with the status it really had: 502 if stored bytes failed verification
        on the way (the client sees the stream cut short), 500 for any other
        failure, the response's own status otherwise."""
        status = response.status_code
        try:
            yield from content
        except IntegrityFailure as error:
            status = 502
            with _bound(fields):
                logger.error("the stream of %s stopped: %s", request.path, error)
            raise
        except Exception:
            status = 500
            with _bound(fields):
                logger.exception("the stream of %s stopped", request.path)
            raise
        finally:
            with _bound(fields):
                self._record(request, status, time.perf_counter() - started)

    def _record(self, request: HttpRequest, status: int, seconds: float) -> None:
        view = view_label(request)
        probe = _is_probe(request)
        if not probe and request.resolver_match is not None:
            context.bind(user=_username(request))
        method = request.method or ""
        metrics.http_request_observe(view=view, method=method, status=status, seconds=seconds)
        duration_ms = round(seconds * 1000, 1)
        # Probes and scrapes come every few seconds: at INFO they would bury the rest.
        logger.log(
            logging.DEBUG if probe else logging.INFO,
            "%s %s %s %.1f ms",
            method,
            request.path,
            status,
            duration_ms,
            extra={
                "method": method,
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                "view": view,
            },
        )
