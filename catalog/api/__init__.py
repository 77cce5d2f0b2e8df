"""The catalog's part of the REST API at /api/v1/ (see ``config.api``).

``register`` adds the routers to the one NinjaAPI instance, with the handler that
turns an oversized request body into a 413 instead of a 500.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import NinjaAPI

from catalog.api import changes, datasets, merges, transfer  # noqa: F401 (their endpoints join the router)
from catalog.api.common import router


def register(api: NinjaAPI) -> None:
    api.add_router("/", router)

    @api.exception_handler(RequestDataTooBig)
    def request_too_big(request: HttpRequest, error: RequestDataTooBig):
        from django.conf import settings

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return api.create_response(
            request,
            {
                "error": f"the request body is larger than the {limit:,} bytes this server accepts; send less at a time."
            },
            status=413,
        )
