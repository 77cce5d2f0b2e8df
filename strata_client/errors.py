"""What can go wrong, each with the exit code the console command uses: 2 when the
request itself is wrong (bad input, unknown name, no permission, bad token), 1 when
it was right but could not be done (a branch moved, the network, damaged data), 3
when the data is being restored from cold storage (pull again later).

An error answer of the server becomes one of these through one table,
`ANSWERS`: by its status and the kind its JSON body names (``"restoring": true``),
else by its status alone, else as a client error (4xx) or a server error (5xx).
"""

from __future__ import annotations

import json


class StrataClientError(Exception):
    """Base class: one sentence for people, and an exit code."""

    exit_code = 1
    # The server's whole JSON answer, when the error came from one (a merge's
    # conflicts, listed by key and column, come this way).
    answer: dict = {}

    @classmethod
    def from_answer(cls, message: str, retry_after: float | None) -> StrataClientError:
        return cls(message)


class ClientError(StrataClientError):
    """The request was refused as asked (a 4xx): fix the input and try again."""

    exit_code = 2


class AuthError(ClientError):
    """The token is missing, unknown, revoked or expired."""


class Forbidden(ClientError):
    """The user may see the dataset but lacks the role for this."""


class NotFound(ClientError):
    """No such dataset, ref, path or upload (or not one the user may see)."""


class Conflict(StrataClientError):
    """The branch moved meanwhile; pushing again commits on top of the new head."""


class MergeConflict(Conflict):
    """A merge that cannot be made as asked: `merge` is its outcome, with every
    conflict. Nothing was merged; settle them by strategy, or push a resolved
    version to the source branch and merge again."""

    @property
    def merge(self) -> dict:
        return self.answer


class Restoring(StrataClientError):
    """The version's data is being restored from cold storage; the server started
    the restore. Pull again after `retry_after` seconds (exit 3)."""

    exit_code = 3

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @classmethod
    def from_answer(cls, message: str, retry_after: float | None) -> StrataClientError:
        return cls(message, retry_after)


class ServerError(StrataClientError):
    """The server failed (a 5xx); the message carries its reference."""


class TransferError(StrataClientError):
    """The network or the object store failed while moving bytes."""


class IntegrityError(StrataClientError):
    """Bytes received do not match their names: nothing was written."""


# (status, kind named in the body) -> the error raised; None matches any body.
ANSWERS: dict[tuple[int, str | None], type[StrataClientError]] = {
    (401, None): AuthError,
    (403, None): Forbidden,
    (404, None): NotFound,
    (409, None): Conflict,
    (409, "merge_conflicts"): MergeConflict,
    (503, "restoring"): Restoring,
}


def error_from_answer(status: int, body: bytes, retry_after: str | None = None) -> StrataClientError:
    """The error for an error answer of the server: its status, its JSON body
    (``{"error": "sentence"}``, perhaps with ``"<kind>": true``) and its
    Retry-After header."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    message = payload.get("error")
    if not isinstance(message, str):
        message = f"the server answered {status}."
    kind = next((key for key, value in payload.items() if key != "error" and value is True), None)
    error_class = ANSWERS.get((status, kind)) or ANSWERS.get((status, None))
    if error_class is None:
        error_class = ClientError if status < 500 else ServerError
    try:
        seconds = float(retry_after) if retry_after else None
    except ValueError:
        seconds = None
    error = error_class.from_answer(message, seconds)
    error.answer = payload
    return error
