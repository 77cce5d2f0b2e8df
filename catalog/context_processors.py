"""What every page's template needs: the section of the site it belongs to, for
the main navigation, from the URL pattern that served it."""

from __future__ import annotations

from django.http import HttpRequest


def section(request: HttpRequest) -> dict[str, str]:
    match = getattr(request, "resolver_match", None)
    name = (match.view_name if match else "") or ""
    if name.startswith("registry:"):
        found = "models"
    elif name.startswith("lineage:"):
        found = "lineage"
    elif name.startswith("governance:"):
        found = "rollbacks"
    elif name.startswith("lifecycle:"):
        found = "cost"
    else:
        found = "datasets"
    return {"section": found}
