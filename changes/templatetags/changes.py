"""Template tags for what change requests add to the dataset page:

    {% load changes %}{% change_requests_link dataset %}
    {% protection_section o %}

the link to the dataset's change requests with how many are open, and the
"Protected branches" section (its rules, and for stewards the form to add, change
or remove one). Each makes one query, whatever the number of rules or requests;
the catalog's page stays free of imports from this app.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html

from catalog.models import Dataset
from changes.models import BranchProtection, ChangeRequest
from changes.services.requests import OPEN_STATES
from changes.views import ProtectionForm

register = template.Library()


@register.simple_tag
def change_requests_link(dataset: Dataset) -> str:
    """'Change requests (2 open)', a button to the dataset's change requests."""
    count = ChangeRequest.objects.filter(dataset=dataset, state__in=OPEN_STATES).count()
    return format_html(
        '<a class="button" href="{}">Change requests <span class="muted">({} open)</span></a>',
        reverse("changes:change_list", args=[dataset.name]),
        count,
    )


@register.inclusion_tag("changes/_protections.html", takes_context=True)
def protection_section(context: template.Context, overview: Any) -> dict[str, Any]:
    """The dataset's protection rules, each with the branches it matches now. After
    a refused save, the view puts the refused rule and its sentence in the context
    (`protection_form`, `protection_error`), and the section opens that form."""
    dataset = overview.dataset
    branch_names = [branch.name for branch in overview.branches]
    rules = list(BranchProtection.objects.filter(dataset=dataset).order_by("pattern"))
    refused: ProtectionForm | None = context.get("protection_form")
    error = context.get("protection_error") or ""
    rows = []
    for rule in rules:
        matches = [
            name for name in branch_names if name == rule.pattern or fnmatch.fnmatchcase(name, rule.pattern)
        ]
        failed_here = bool(error) and refused is not None and refused.pattern == rule.pattern
        rows.append(
            {
                "rule": rule,
                "matches": matches,
                "form": refused if failed_here else ProtectionForm.of(rule),
                "error": error if failed_here else "",
            }
        )
    patterns = {rule.pattern for rule in rules}
    failed_new = bool(error) and (refused is None or refused.pattern not in patterns)
    if failed_new and refused is not None:
        new_form = refused
    else:
        unprotected = dataset.default_branch not in patterns
        new_form = ProtectionForm(pattern=dataset.default_branch if unprotected else "")
    return {
        "dataset": dataset,
        "rows": rows,
        "can_write": overview.can_write,
        "new_form": new_form,
        "new_error": error if failed_new else "",
        "csrf_token": context.get("csrf_token"),
    }
