"""What can go wrong, each with the exit code the console command uses: 2 when the
request itself is wrong (bad input, unknown name, no permission, bad token), 1 when
it was right but could not be done (a branch moved, the network, damaged data), 3
when the data is being restored from cold storage (pull again later)."""

from __future__ import annotations


class StrataClientError(Exception):
    """Base class: one sentence for people, and an exit code."""

    exit_code = 1


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


class Restoring(StrataClientError):
    """The version's data is being restored from cold storage; the server started
    the restore. Pull again after `retry_after` seconds (exit 3)."""

    exit_code = 3

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(StrataClientError):
    """The server failed (a 5xx); the message carries its reference."""


class TransferError(StrataClientError):
    """The network or the object store failed while moving bytes."""


class IntegrityError(StrataClientError):
    """Bytes received do not match their names: nothing was written."""
