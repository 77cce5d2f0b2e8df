"""Errors raised by the store. Each message names the object concerned.

Like the services' errors, each class carries how it would be answered if it ever
reached a caller unchanged: `http_status`, `exit_code` and a short machine `kind`
(services turn store errors into their own, naming the object, before that).
"""

from __future__ import annotations

from typing import ClassVar


class StoreError(Exception):
    """Base class for every error the store raises (HTTP 500, exit 1)."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "store_error"


class CorruptObject(StoreError):
    """Bytes read back do not hash to the name they were stored under."""

    http_status = 502
    kind = "corrupt"

    def __init__(self, object_kind: str, name: str, detail: str = "") -> None:
        self.object_kind = object_kind
        self.name = name
        message = f"{object_kind} {name} is corrupt"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class MissingObject(StoreError):
    """An object the metadata refers to is not in the store."""

    http_status = 502
    kind = "missing"

    def __init__(self, object_kind: str, name: str) -> None:
        self.object_kind = object_kind
        self.name = name
        super().__init__(f"{object_kind} {name} is missing from the store")


class ObjectRestoring(StoreError):
    """The object sits in a cold tier and must be restored before it can be read."""

    http_status = 503
    exit_code = 3
    kind = "restoring"

    def __init__(self, name: str, ready_in_seconds: float | None = None) -> None:
        self.name = name
        self.ready_in_seconds = ready_in_seconds
        message = f"pack {name} is in cold storage and is being restored"
        if ready_in_seconds is not None:
            message += f"; ready in about {int(ready_in_seconds // 60) + 1} min"
        super().__init__(message)


class ConfigurationError(StoreError):
    """The store URL or its settings cannot be used: fix them (exit 2)."""

    exit_code = 2
    kind = "configuration"
