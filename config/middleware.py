"""Requests carrying a NUL character are refused before any view runs.

PostgreSQL stores no NUL in text or JSON, so such a value would otherwise reach
the database and fail there as a server error. Query strings, form fields and
JSON bodies are checked; binary bodies (pack uploads) are left alone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

MESSAGE = "the request holds a NUL character, which Strata cannot store; remove it."


def _in_query(query) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())


def _has_nul(request: HttpRequest) -> bool:
    if _in_query(request.GET):
        return True
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type.startswith("application/json"):
        try:
            body = request.body
        except RequestDataTooBig:
            return False  # the view answers 413, naming the limit
        # A JSON string spells NUL as \u0000; a raw NUL byte is not JSON at all.
        return b"\x00" in body or b"\\u0000" in body.lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            return _in_query(request.POST)
        except (RequestDataTooBig, TooManyFieldsSent):
            return False  # refused as it would be without this check
    return False


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            if request.path.startswith("/api/"):
                return JsonResponse({"error": MESSAGE}, status=400, json_dumps_params={"ensure_ascii": False})
            return HttpResponseBadRequest(
                MESSAGE[0].upper() + MESSAGE[1:], content_type="text/plain; charset=utf-8"
            )
        return self.get_response(request)
