"""Lineage pages: the graph around a node, its exports, the run form, and the
comparison of two versions' upstream (the model pages are the registry's).

Thin, like every view: parse the query, call one selector or service, render.
A bad request (depth out of range, unknown node) is answered with its sentence and
a 4xx status by `catalog.views.errors`: beside the form where there is one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from catalog.errors import NotFound
from catalog.models import Version
from catalog.views.errors import form_error, refusals_as_data
from lineage import selectors
from lineage.domain import graph as lgraph
from lineage.domain.render import render_svg
from lineage.models import StepKind
from lineage.services import runs as services


def _query(request: HttpRequest, **changes: Any) -> str:
    """The page's query string with some parameters changed (None drops one)."""
    params = {key: request.GET.get(key) for key in ("depth", "direction", "select")}
    params.update(changes)
    return urlencode({key: value for key, value in params.items() if value not in (None, "")})


def _href_for(request: HttpRequest, focus_id: int):
    def href(node_id: Any) -> str | None:
        if isinstance(node_id, int):
            return f"?{_query(request, select=None if node_id == focus_id else node_id)}"
        return None

    return href


# A page shows at most this much of each facet, and this many facets: a producer's
# facets can be large (query plans, schemas), and the API has them whole.
FACET_CHARS_SHOWN = 16 * 1024
FACETS_SHOWN = 50


@dataclass(slots=True)
class FacetShown:
    name: str
    text: str  # indented JSON, cut at FACET_CHARS_SHOWN
    left_out: int  # characters not shown


def facets_shown(facets: dict[str, Any]) -> list[FacetShown]:
    """Each facet as bounded text for a folded <details> on the page. A facet too
    big to show whole is not indented first (indenting is what made a deep one
    hundreds of times larger)."""
    shown = []
    for name in sorted(facets)[:FACETS_SHOWN]:
        text = json.dumps(facets[name], separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        if len(text) <= FACET_CHARS_SHOWN:
            text = json.dumps(facets[name], indent=2, sort_keys=True, ensure_ascii=False)
        left_out = max(0, len(text) - FACET_CHARS_SHOWN)
        shown.append(FacetShown(name, text[:FACET_CHARS_SHOWN], left_out))
    return shown


@login_required
def node_page(request: HttpRequest, node_id: int) -> HttpResponse:
    depth = request.GET.get("depth", lgraph.DEFAULT_DEPTH)
    direction = request.GET.get("direction", "both")
    view = selectors.lineage_view(
        user=request.user,
        node_id=node_id,
        depth=depth,
        direction=direction,
        selected=request.GET.get("select"),
    )
    svg = render_svg(view.layout, _href_for(request, view.focus.pk), selected=view.details.node.pk)
    details = view.details
    params = (
        json.dumps(details.run.params, indent=2, sort_keys=True) if details.run and details.run.params else ""
    )
    facets: dict[str, Any] = {}
    if details.run:
        # A run keeps its facets by part ("run", "job"): each is shown on its own.
        for part, value in details.run.facets.items():
            if part.startswith("_"):
                continue
            if isinstance(value, dict):
                facets.update({f"{part}.{name}": facet for name, facet in value.items()})
            else:
                facets[part] = value
    elif details.source:
        facets = details.source.facets
    context = {
        "view": view,
        "svg": svg,
        "details": details,
        "params": params,
        "facets": facets_shown(facets),
        "facets_more": max(0, len(facets) - FACETS_SHOWN),
        "cap": selectors.LAYER_CAP,
        "depths": range(lgraph.MIN_DEPTH, lgraph.MAX_DEPTH + 1),
        "directions": [("upstream", "Upstream"), ("both", "Both"), ("downstream", "Downstream")],
        "export_query": _query(request, select=None),
        "centre_query": _query(request, select=None),
    }
    return render(request, "lineage/node.html", context)


@login_required
@refusals_as_data
def node_export(request: HttpRequest, node_id: int, fmt: str) -> HttpResponse:
    view = selectors.lineage_view(
        user=request.user,
        node_id=node_id,
        depth=request.GET.get("depth", lgraph.DEFAULT_DEPTH),
        direction=request.GET.get("direction", "both"),
    )
    name = f"lineage-{view.focus.pk}-{view.direction}-{view.depth}"
    if fmt == "json":
        response: HttpResponse = JsonResponse(selectors.graph_json(view), json_dumps_params={"indent": 2})
    else:

        def href(node: Any) -> str | None:
            if not isinstance(node, int):
                return None
            return request.build_absolute_uri(reverse("lineage:node", args=[node]))

        response = HttpResponse(
            '<?xml version="1.0" encoding="UTF-8"?>\n' + render_svg(view.layout, href),
            content_type="image/svg+xml; charset=utf-8",
        )
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@login_required
def version_page(request: HttpRequest, version_id: str) -> HttpResponse:
    """The lineage of a dataset version: its node's page, or a word on how to record some."""
    version = Version.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"there is no version {version_id}.")
    node = selectors.node_for_version(user=request.user, version=version)
    if node is not None:
        return HttpResponseRedirect(reverse("lineage:node", args=[node.pk]) + "?" + request.GET.urlencode())
    return render(request, "lineage/no_lineage.html", {"version": version})


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "lineage/index.html", {"runs": selectors.run_list(user=request.user)})


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


@login_required
@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest) -> HttpResponse:
    """Record a run from the dashboard: the same service as the API and CLI."""
    form = {key: request.POST.get(key, "") for key in ("name", "step", "params", "code", "inputs", "outputs")}
    # The inputs and outputs are named in the form: one that is not there is said beside it.
    with form_error(not_found=True) as refused:
        if request.method == "POST":
            result = services.run_record(
                user=request.user,
                name=form["name"],
                step=form["step"] or StepKind.OTHER,
                params=services.parse_params(_lines(form["params"])),
                code=form["code"],
                inputs=_lines(form["inputs"]),
                outputs=_lines(form["outputs"]),
                origin="dashboard",
            )
            return HttpResponseRedirect(reverse("lineage:node", args=[result.run.node_id]))
    context = {"form": form, "error": refused.message, "steps": StepKind.choices}
    return render(request, "lineage/run_new.html", context, status=refused.status)


@login_required
def compare(request: HttpRequest) -> HttpResponse:
    """What changed upstream between two versions: ?a=reviews@1.0.0&b=reviews@1.1.0."""
    spec_a, spec_b = request.GET.get("a", "").strip(), request.GET.get("b", "").strip()
    context: dict[str, Any] = {"a": spec_a, "b": spec_b}
    with form_error() as refused:
        if spec_a and spec_b:
            context["result"] = selectors.upstream_changes(
                user=request.user, spec_a=spec_a, spec_b=spec_b
            ).as_dict()
    context["error"] = refused.message
    return render(request, "lineage/compare.html", context, status=refused.status)
