"""Merge pages: pick two branches, see the dry run, settle conflicts, merge.

Thin like every view: parse, call one service or selector, render. A merge is a
row (``catalog.models.Merge``) worked out by ``catalog.services.merges``: while the
request waits when its tables are small, else by a worker. Its page polls the
outcome's partial with htmx every second until the merge has finished, and the
partial then answers 286, which stops the polling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from catalog import selectors
from catalog.selectors.merges import merge_overview, merges_recent
from catalog.services.merges import merge_request
from catalog.views.errors import Refusal, form_error
from catalog.views.htmx import HtmxHttpRequest
from catalog.views.pages import _dataset_for

# Longer input than this is not a branch, a column or a message anyone typed.
_NAME_CHARS = 200
_MESSAGE_CHARS = 10_000


@dataclass(slots=True)
class MergeForm:
    """The steward's choices on a merge page, as posted or as the merge was asked."""

    strategy: str = ""
    path_strategies: dict[str, str] = field(default_factory=dict)
    key: str = ""
    message: str = ""

    @classmethod
    def posted(cls, request: HttpRequest) -> MergeForm:
        # Each conflicting path comes with its select, in the same order.
        paths = request.POST.getlist("conflict_path")
        sides = request.POST.getlist("path_strategy")
        return cls(
            strategy=request.POST.get("strategy", "").strip()[:_NAME_CHARS],
            path_strategies={
                path: side.strip()[:_NAME_CHARS]
                for path, side in zip(paths, sides, strict=False)
                if side.strip()
            },
            key=request.POST.get("key", "").strip()[:_NAME_CHARS],
            message=request.POST.get("message", "").strip()[:_MESSAGE_CHARS],
        )

    @classmethod
    def of(cls, options: dict[str, Any]) -> MergeForm:
        return cls(
            strategy=options.get("strategy") or "",
            path_strategies=dict(options.get("path_strategies") or {}),
            key=(options.get("keys") or {}).get("", ""),
            message=options.get("message") or "",
        )

    def keys(self) -> dict[str, str]:
        return {"": self.key} if self.key else {}


@login_required
@require_GET
def merge_new(request: HttpRequest, name: str) -> HttpResponse:
    """Pick the branch to merge and the one to merge into; with both, run a dry run
    and show it on its merge page. A branch that is not there is said beside the form."""
    dataset = _dataset_for(request, name)
    source = request.GET.get("source", "").strip()[:_NAME_CHARS]
    into = request.GET.get("into", "").strip()[:_NAME_CHARS]
    key = request.GET.get("key", "").strip()[:_NAME_CHARS]
    branches = selectors.upload_choices(dataset)
    with form_error(not_found=True) as refused:
        if source:
            merge = merge_request(
                user=request.user,
                dataset_name=dataset.name,
                source=source,
                into=into or None,
                keys={"": key} if key else None,
                dry_run=True,
            )
            return redirect("catalog:merge_detail", name=dataset.name, merge_id=merge.id)
    # Offered first: the first branch that is not the default one.
    others = [branch for branch in branches if branch != dataset.default_branch]
    context = {
        "dataset": dataset,
        "branches": branches,
        "source": source or (others[0] if others else ""),
        "into": into or dataset.default_branch,
        "key": key,
        "recent": merges_recent(dataset),
        "error": refused.message,
    }
    return render(request, "catalog/merge_new.html", context, status=refused.status)


@login_required
@require_http_methods(["GET", "POST"])
def merge_detail(request: HtmxHttpRequest, name: str, merge_id: str) -> HttpResponse:
    """A merge or dry run: the branches and their base, and once worked out what it
    takes from the source, the tables it merges by row and its conflicts. Stewards
    settle the conflicts here and merge (a POST asks for a new merge of the same
    branches, dry run or not, and goes to its page). An htmx request gets the outcome
    alone, with 286 once the merge has finished."""
    overview = merge_overview(user=request.user, name=name, merge_id=merge_id)
    merge = overview.merge
    form = MergeForm.of(overview.options)
    refused = Refusal()
    if request.method == "POST":
        form = MergeForm.posted(request)
        with form_error() as refused:
            made = merge_request(
                user=request.user,
                dataset_name=overview.dataset.name,
                source=merge.source,
                into=merge.target,
                strategy=form.strategy or None,
                path_strategies=form.path_strategies,
                keys=form.keys(),
                message=form.message,
                dry_run=request.POST.get("action") != "merge",
                # Merged on the heads of the dry run on this page, or refused.
                expect_heads=(merge.target_head_id, merge.source_head_id),
            )
            return redirect("catalog:merge_detail", name=overview.dataset.name, merge_id=made.id)
    context = {
        "o": overview,
        "dataset": overview.dataset,
        "merge": merge,
        "form": form,
        "path_choices": [(path, form.path_strategies.get(path, "")) for path in overview.strategy_paths],
        "error": refused.message,
    }
    if request.htmx:
        response = render(request, "catalog/_merge_outcome.html", context)
        if merge.finished:
            response.status_code = 286  # htmx: stop polling, nothing will change any more
        return response
    return render(request, "catalog/merge_detail.html", context, status=refused.status)
