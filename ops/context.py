"""The context of the work under way — request id, user, dataset, version, task —
kept in a context variable, so every log line written on its behalf carries it
without being passed around."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType

# The fields a log line takes from the context, in the order they are written.
FIELDS = ("request_id", "user", "dataset", "version", "task", "task_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("strata_context", default=_EMPTY)


def current() -> Mapping[str, str]:
    """The fields known now (read-only)."""
    return _context.get()


def bind(**fields: str | None) -> Token[Mapping[str, str]]:
    """Add fields to the context (None and empty values are left out); returns the
    token that `reset` takes to restore what was there before."""
    merged = dict(_context.get())
    merged.update({key: value for key, value in fields.items() if value})
    return _context.set(MappingProxyType(merged))


def reset(token: Token[Mapping[str, str]]) -> None:
    """Restore the context as it was before the `bind` that gave `token`."""
    _context.reset(token)
