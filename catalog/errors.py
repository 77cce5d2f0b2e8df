"""Errors that services raise for callers to show: one clear sentence each.

Each class says once how it is answered everywhere: `http_status` for the API and
the pages, `exit_code` for the command line, and `kind`, a short machine name. The
API's body is ``{"error": "sentence"}``; an error whose `body_flag` is set adds
``"<kind>": true`` to it, for a client that must tell it apart from others of its
status (a 503 that is a restore under way, not an outage). A subclass inherits all
three, and sets its own only where it is answered differently.
"""

from __future__ import annotations

from typing import ClassVar


class StrataError(Exception):
    """Base class: the request was right but could not be done (HTTP 500, exit 1)."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "error"
    body_flag: ClassVar[bool] = False

    def response_headers(self) -> dict[str, str]:
        """Headers the API adds to its answer (none but for a restore)."""
        return {}


class UserError(StrataError):
    """The request cannot be done as asked (bad input, unknown name): exit 2, 400."""

    http_status = 400
    exit_code = 2
    kind = "bad_request"


class NotFound(UserError):
    """A dataset, ref or path that does not exist (or that the user may not see)."""

    http_status = 404
    kind = "not_found"


class Forbidden(UserError):
    """The user may see the thing but lacks the role to do this (HTTP 403)."""

    http_status = 403
    kind = "forbidden"


class ConflictError(StrataError):
    """Someone else changed the thing first (a branch moved): try again (409, exit 1)."""

    http_status = 409
    exit_code = 1
    kind = "conflict"


class IntegrityFailure(StrataError):
    """Stored bytes are damaged or missing; nothing was served (502, exit 1)."""

    http_status = 502
    exit_code = 1
    kind = "integrity"


class UnsafeTree(UserError):
    """A stored tree names a path outside its folder: refused before anything is written."""

    kind = "unsafe_tree"


class RestoreInProgress(StrataError):
    """The data sits in cold storage; a restore was started: try again later (exit 3,
    HTTP 503 with Retry-After, and ``"restoring": true`` in the body)."""

    http_status = 503
    exit_code = 3
    kind = "restoring"
    body_flag = True

    def __init__(self, message: str, ready_in_seconds: float | None = None) -> None:
        super().__init__(message)
        self.ready_in_seconds = ready_in_seconds

    def response_headers(self) -> dict[str, str]:
        # Not an outage: the data is being restored; ask again once it may be ready.
        return {"Retry-After": str(max(1, round(self.ready_in_seconds or 60)))}
