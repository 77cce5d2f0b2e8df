"""Typed readers of environment variables, strict about what they accept.

Each reader takes the variable's name and its default. A variable that is unset,
empty or only blanks takes the default; any other value must be one the reader
accepts, or Strata refuses to start with one sentence naming the variable, the
value and what would do, e.g.

    STRATA_SECURE_COOKIES is "ture": use one of true, false, 1, 0, yes, no, on, off.

A mistyped value is never quietly read as the default or as "off".
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")
BOOLEANS = "true, false, 1, 0, yes, no, on, off"


def env_str(name: str, default: str) -> str:
    """The value as given (not stripped), or `default`."""
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    """true/false, 1/0, yes/no or on/off, in any case."""
    value = _raw(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise _refuse(name, value, f"use one of {BOOLEANS}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number, optionally within `minimum` and `maximum` (both included)."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        number = None
    if number is None or not _within(number, minimum, maximum):
        raise _refuse(name, value, "use a whole number" + _bounds(minimum, maximum))
    return number


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    """A finite number, optionally within `minimum` and `maximum` (both included)."""
    value = _raw(name)
    if value is None:
        return float(default)
    try:
        number = float(value.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not _within(number, minimum, maximum):
        raise _refuse(name, value, "use a number" + _bounds(minimum, maximum))
    return number


def env_decimal(name: str, default: str, *, minimum: Decimal | int | None = None) -> Decimal:
    """An exact decimal number (money), optionally at least `minimum`."""
    value = _raw(name)
    if value is None:
        return Decimal(default)
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or not _within(number, minimum, None):
        raise _refuse(name, value, "use a number" + _bounds(minimum, None))
    return number


def env_list(name: str, default: Sequence[str]) -> list[str]:
    """Comma-separated items, each stripped; empty items are dropped."""
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    """One of `choices`, in any case; returned as spelled in `choices`."""
    value = _raw(name)
    if value is None:
        return default
    by_word = {choice.lower(): choice for choice in choices}
    word = value.strip().lower()
    if word not in by_word:
        raise _refuse(name, value, "use one of " + ", ".join(choices))
    return by_word[word]


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or not value.strip() else value


def _within(number: float | Decimal, minimum: float | Decimal | None, maximum: float | None) -> bool:
    return (minimum is None or number >= minimum) and (maximum is None or number <= maximum)


def _bounds(minimum: float | Decimal | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {_number(minimum)} to {_number(maximum)}"
    if minimum is not None:
        return f" of at least {_number(minimum)}"
    if maximum is not None:
        return f" of at most {_number(maximum)}"
    return ""


def _number(bound: float | Decimal) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


def _refuse(name: str, value: str, accepted: str) -> ImproperlyConfigured:
    # JSON quoting shows blanks and control characters, and keeps the sentence on one line.
    return ImproperlyConfigured(f"{name} is {json.dumps(value, ensure_ascii=False)}: {accepted}.")
