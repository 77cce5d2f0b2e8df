"""Requests carrying a NUL character are refused before any view uses them.

PostgreSQL stores no NUL in text or JSON, so such a value would otherwise reach
the database and fail there as a server error. Every request body is checked,
whatever its Content-Type says (a JSON body sent as text/plain is still parsed as
JSON by the API): a raw NUL byte or a JSON ``\\u0000`` escape is refused, and so
is a NUL in the query string, a form field, or a multipart field's name or value
or file name. Two kinds of bytes are left alone, because they are data, not
text: the content of files in a multipart form, and the body of the signed pack
upload (``PUT /api/v1/store/packs/<id>``).

(Django already drops unprintable characters, NUL among them, from the names of
uploaded files; they are checked again all the same.)

A multipart form is checked when the view first reads it, not here: the upload
pages add their size limit to the upload handlers first, which reading the form
here would forbid.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.urls import Resolver404, resolve

from catalog.errors import StrataError
from catalog.views.errors import error_page

MESSAGE = "the request holds a NUL character, which Strata cannot store; remove it."
# The one endpoint whose body is binary: pack bytes, put with a signed URL.
_BINARY_BODY = ("PUT", "api:store_pack")


class NulInForm(BadRequest):
    """A multipart form held a NUL in a field or a file name."""


def _in_query(query) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())


def _in_files(files) -> bool:
    return any(
        "\x00" in key or any("\x00" in (upload.name or "") for upload in uploads)
        for key, uploads in files.lists()
    )


def _binary_body(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return (request.method, match.view_name) == _BINARY_BODY


def _body_has_nul(request: HttpRequest) -> bool:
    try:
        body = request.body
    except RequestDataTooBig:
        return False  # the view answers 413, naming the limit
    # A JSON string spells NUL as \u0000; a raw NUL byte is not text at all.
    return b"\x00" in body or b"\\u0000" in body.lower()


def _has_nul(request: HttpRequest) -> bool:
    if _in_query(request.GET):
        return True
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type.startswith("multipart/form-data"):
        _check_form_when_read(request)
        return False
    if _binary_body(request):
        return False
    if _body_has_nul(request):
        return True
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            return _in_query(request.POST)  # %00 is a NUL once decoded
        except (RequestDataTooBig, TooManyFieldsSent):
            return False  # refused as it would be without this check
    return False


def _check_form_when_read(request: HttpRequest) -> None:
    """Check the form's fields and file names right after Django parses it, for
    whoever reads it first (the CSRF check or the view)."""
    load = request._load_post_and_files

    def load_and_check() -> None:
        load()
        if _in_query(request._post) or _in_files(request._files):  # type: ignore[attr-defined]
            request.strata_nul = True  # type: ignore[attr-defined]
            raise NulInForm(MESSAGE)

    # Django parses the form lazily in this private method; wrapping it on the
    # instance is what lets the check run whoever reads the form first.
    request._load_post_and_files = load_and_check  # type: ignore[method-assign]


def _refusal(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": MESSAGE}, status=400, json_dumps_params={"ensure_ascii": False})
    return HttpResponseBadRequest(MESSAGE[0].upper() + MESSAGE[1:], content_type="text/plain; charset=utf-8")


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            return _refusal(request)
        response = self.get_response(request)
        # A form found holding a NUL when it was read stopped the request there
        # (as a 400 of Django's); it is answered like any other NUL.
        if getattr(request, "strata_nul", False):
            return _refusal(request)
        return response


class ErrorPageMiddleware:
    """A service's refusal raised by a view becomes its page, here and nowhere else:
    NotFound the 404 page, Forbidden the 403 page, any other user error a 400 page
    with its sentence (see `catalog.views.errors`). A failure (5xx) is left to the
    500 page, which logs it under a reference. The API answers its own errors
    (`config.api`), so none reaches this."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, StrataError) and exception.http_status < 500:
            return error_page(request, exception)
        return None
