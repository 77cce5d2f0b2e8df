"""Template filters for the model pages: numbers as a metric, a change and a share.

{% load registry %}{{ change.after|metric }} ({{ change.delta|signed }})
"""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def metric(value: Any) -> str:
    """A metric's value, short and exact enough: 0.912, 1.23e-05, 1,204."""
    if value is None or value == "":
        return "—"
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:.6g}"


@register.filter
def signed(value: Any) -> str:
    """A change with its sign: +0.031, −0.012, +3 (a real minus sign)."""
    if value is None or value == "":
        return "—"
    number = float(value)
    if number == 0:
        return "0"
    text = f"{abs(number):,}" if number.is_integer() and abs(number) < 1e15 else f"{abs(number):.4g}"
    if text.endswith(".0"):
        text = text[:-2]
    return ("+" if number > 0 else "−") + text


@register.filter
def percent(value: Any) -> str:
    """A share (0.25) as a percentage ('25.0%')."""
    if value is None or value == "":
        return "—"
    return f"{100 * float(value):.1f}%"
