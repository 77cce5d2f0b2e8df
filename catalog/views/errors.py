"""How the pages answer a service's error, in one place.

A view calls its service and lets a refusal rise: `config.middleware.ErrorPageMiddleware`
answers it with `error_page` — NotFound the 404 page, Forbidden the 403 page, any
other user error a 400 page (413 for an upload over the limit) with its sentence,
and an htmx request the sentence alone. A view with a form to show again wraps its
service call in `form_error`; an action that goes back where it came from wraps it
in `flash_error`; an export answers in its own format through `refusals_as_data`.
No view catches a service error itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from catalog.errors import StrataError, UserError

# Words that start the services' sentences. Only these are capitalised: a sentence
# may also start with a name (a path, a dataset) whose case must be kept.
_SENTENCE_STARTS = {
    "there",
    "you",
    "a",
    "an",
    "the",
    "this",
    "that",
    "choose",
    "cannot",
    "another",
    "nothing",
    "no",
    "pick",
    "name",
    "give",
    "say",
    "only",
    "depth",
    "direction",
    "refusing",
}

_PAGES = {404: "404.html", 403: "403.html"}


def sentence(error: Exception | str) -> str:
    """Service errors are sentences that start in lower case, to follow a colon on
    the command line; on a page they stand alone."""
    text = str(error)
    if text.split(" ", 1)[0] in _SENTENCE_STARTS:
        return text[:1].upper() + text[1:]
    return text


def error_page(request: HttpRequest, error: StrataError) -> HttpResponse:
    """The page for a refusal, with the error's status and its sentence; an htmx
    request gets the sentence alone, to show where its partial would have gone."""
    template = "_error.html" if getattr(request, "htmx", False) else _PAGES.get(error.http_status, "400.html")
    context = {"message": sentence(error), "status": error.http_status}
    return render(request, template, context, status=error.http_status)


@dataclass(slots=True)
class Refusal:
    """What a service refused, to show beside the form: its sentence and status.
    False while nothing was refused."""

    error: StrataError | None = None
    message: str = ""
    status: int = 200

    def __bool__(self) -> bool:
        return self.error is not None


@contextmanager
def form_error(*, not_found: bool = False) -> Iterator[Refusal]:
    """Run a form's service: a user error it raises becomes the sentence shown
    beside the form, with the error's status (400; 413 for an upload over the
    limit). A refusal for lack of a role rises to the 403 page, and a missing thing
    to the 404 page — unless `not_found` says the name was typed in the form, which
    makes it the form's mistake (400, beside the form)."""
    refusal = Refusal()
    try:
        yield refusal
    except UserError as error:
        missing = error.http_status == 404
        if error.http_status == 403 or (missing and not not_found):
            raise
        refusal.error, refusal.message = error, sentence(error)
        refusal.status = 400 if missing else error.http_status


@contextmanager
def flash_error(request: HttpRequest) -> Iterator[None]:
    """Run an action that goes back to the page it came from: a user error it
    raises, a refusal included, is shown as an error message on that page."""
    try:
        yield
    except UserError as error:
        messages.error(request, sentence(error))


def refusals_as_data(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For a view that answers a file rather than a page (an export named by its
    `fmt`): a refused request gets its sentence as ``{"error": …}`` when the file
    asked for is JSON, as plain text otherwise, with the error's status."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except UserError as error:
            if kwargs.get("fmt") == "json":
                return JsonResponse({"error": str(error)}, status=error.http_status)
            return HttpResponse(
                str(error), status=error.http_status, content_type="text/plain; charset=utf-8"
            )

    return wrapped
