"""Model pages: the models, a model's versions, a model version (with its
strata.lock to download), and two model versions compared.

Thin, like every view: parse the query, call one selector or service, render.
A bad request (a spec that names nothing) is answered with its sentence and a 4xx
status by `catalog.views.errors`: beside the form where there is one.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from catalog.views.errors import form_error
from lineage.domain.render import render_svg
from registry import selectors
from registry.domain.metrics import better_direction
from registry.services.locks import lock_build, lock_dump


def _node_href(node_id: Any) -> str | None:
    return reverse("lineage:node", args=[node_id]) if isinstance(node_id, int) else None


@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    summaries = selectors.model_list(user=request.user, query=query)
    return render(request, "registry/models.html", {"models": summaries, "q": query})


@login_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A model's versions, newest first, with their metrics side by side."""
    versions = selectors.model_versions(user=request.user, name=name)
    metric_names = sorted({metric for model in versions for metric in model.metrics})
    rows = selectors.model_version_rows(user=request.user, versions=versions, metric_names=metric_names)
    context = {
        "name": name,
        "rows": rows,
        "metrics": [(metric, better_direction(metric)) for metric in metric_names],
        "versions": versions,
    }
    return render(request, "registry/model_versions.html", context)


@login_required
def model_version(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """A model version: the exact data it trained on, its metrics, its lineage."""
    page = selectors.model_page(user=request.user, spec=f"{name}@{version}")
    context = {
        "page": page,
        "model": page.model,
        "svg": render_svg(page.layout, _node_href, selected=page.model.node_id),
        "params": json.dumps(page.model.params, indent=2, sort_keys=True) if page.model.params else "",
    }
    return render(request, "registry/model.html", context)


@login_required
def model_version_lock(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """The model version's strata.lock, to download and `strata reproduce`."""
    lock = lock_build(user=request.user, model=f"{name}@{version}")
    response = HttpResponse(lock_dump(lock), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="strata.lock"'
    return response


@login_required
def model_compare(request: HttpRequest) -> HttpResponse:
    """Two model versions: ?a=fraud@3.0&b=fraud@3.1."""
    spec_a, spec_b = request.GET.get("a", "").strip()[:200], request.GET.get("b", "").strip()[:200]
    context: dict[str, Any] = {"a": spec_a, "b": spec_b}
    with form_error() as refused:
        if spec_a or spec_b:
            selectors.check_pair(spec_a, spec_b)
            context["result"] = selectors.model_compare(user=request.user, spec_a=spec_a, spec_b=spec_b)
    context["error"] = refused.message
    return render(request, "registry/model_compare.html", context, status=refused.status)
