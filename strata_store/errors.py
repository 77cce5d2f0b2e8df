"""Errors raised by the store. Each message names the object concerned."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error the store raises."""


class CorruptObject(StoreError):
    """Bytes read back do not hash to the name they were stored under."""

    def __init__(self, kind: str, name: str, detail: str = "") -> None:
        self.kind = kind
        self.name = name
        message = f"{kind} {name} is corrupt"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class MissingObject(StoreError):
    """An object the metadata refers to is not in the store."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name} is missing from the store")


class ObjectRestoring(StoreError):
    """The object sits in a cold tier and must be restored before it can be read."""

    def __init__(self, name: str, ready_in_seconds: float | None = None) -> None:
        self.name = name
        self.ready_in_seconds = ready_in_seconds
        message = f"pack {name} is in cold storage and is being restored"
        if ready_in_seconds is not None:
            message += f"; ready in about {int(ready_in_seconds // 60) + 1} min"
        super().__init__(message)


class ConfigurationError(StoreError):
    """The store URL or its settings cannot be used."""
