"""The request of a page that answers htmx with a partial, as the type checker sees it."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """Every request passes `django_htmx.middleware.HtmxMiddleware` (settings), which
    sets `request.htmx`: true when htmx sent the request, and then the page answers
    with its partial. Django's own `HttpRequest` does not declare it."""

    htmx: HtmxDetails
