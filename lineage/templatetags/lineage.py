"""Template tags for the lineage section on dataset and version pages.

    {% load lineage %}{% lineage_section version %}

draws the version's direct lineage (what made it, what used it) with a link to
the full graph; the page needs a `request` in its context (the default
context processor puts it there). The filters `metric`, `signed` and `percent`
format numbers on the model pages.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse
from django.utils.safestring import mark_safe

from catalog.models import Version
from lineage import selectors
from lineage.domain.graph import Layout
from lineage.domain.render import render_svg

register = template.Library()


@register.inclusion_tag("lineage/_section.html", takes_context=True)
def lineage_section(context: template.Context, version: Version | None) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if version is None or user is None:
        return {"lineage": {"version": version, "node": None}}
    return {"lineage": selectors.section_for(user, version)}


@register.simple_tag
def lineage_svg(layout: Layout) -> str:
    def href(node_id: Any) -> str | None:
        return reverse("lineage:node", args=[node_id]) if isinstance(node_id, int) else None

    return mark_safe(render_svg(layout, href))  # noqa: S308 - built from escaped parts


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
