"""Template tags for the lineage section on dataset and version pages.

    {% load lineage %}{% lineage_section version %}

draws the version's direct lineage (what made it, what used it) with a link to
the full graph; the page needs a `request` in its context (the default
context processor puts it there).
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
