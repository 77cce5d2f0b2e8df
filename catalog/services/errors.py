"""Errors that services raise for callers to show: one clear sentence each."""

from __future__ import annotations


class StrataError(Exception):
    """Base class: `exit_code` is what the command line exits with."""

    exit_code = 1


class UserError(StrataError):
    """The request cannot be done as asked (bad input, unknown name): exit 2, 4xx."""

    exit_code = 2


class NotFound(UserError):
    """A dataset, ref or path that does not exist (or that the user may not see)."""


class Forbidden(UserError):
    """The user may see the thing but lacks the role to do this (HTTP 403)."""


class ConflictError(StrataError):
    """Someone else changed the thing first (a branch moved): try again."""

    exit_code = 1


class IntegrityFailure(StrataError):
    """Stored bytes are damaged or missing; nothing was served."""

    exit_code = 1


class UnsafeTree(UserError):
    """A stored tree names a path outside its folder: refused before anything is written."""


class RestoreInProgress(StrataError):
    """The data sits in cold storage; a restore was started: try again later (exit 3,
    HTTP 503 with Retry-After)."""

    exit_code = 3

    def __init__(self, message: str, ready_in_seconds: float | None = None) -> None:
        super().__init__(message)
        self.ready_in_seconds = ready_in_seconds
