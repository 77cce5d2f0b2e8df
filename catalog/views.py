"""Pages of the catalog. Thin: parse the request, call a selector, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from . import selectors
from .models import Version
from .services.errors import NotFound


def _dataset_for(request: HttpRequest, name: str):
    """The dataset, or 404 if it does not exist or the user may not read it."""
    try:
        return selectors.dataset_get(name, request.user)
    except NotFound:
        raise Http404(f"There is no dataset named {name}.") from None


@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = list(selectors.dataset_list(request.user))
    heads = selectors.default_heads(datasets)
    rows = [(dataset, heads.get(dataset.pk)) for dataset in datasets]
    return render(request, "catalog/dataset_list.html", {"rows": rows})


@login_required
def dataset_detail(request: HttpRequest, name: str) -> HttpResponse:
    dataset = _dataset_for(request, name)
    head = selectors.resolve_ref(dataset, None)
    history = selectors.version_log(head, limit=200)
    branches = dataset.branches.select_related("head")
    tags = dataset.tags.select_related("version")
    return render(
        request,
        "catalog/dataset_detail.html",
        {"dataset": dataset, "head": head, "history": history, "branches": branches, "tags": tags},
    )


@login_required
def version_detail(request: HttpRequest, name: str, version_id: str) -> HttpResponse:
    dataset = _dataset_for(request, name)
    version = Version.objects.filter(dataset=dataset, id=version_id).first()
    if version is None:
        raise Http404(f"{name} has no version {version_id}.")
    path = request.GET.get("path", "")
    try:
        listing = selectors.tree_listing(version, path)
    except NotFound as error:
        raise Http404(str(error)) from None
    crumbs = []
    parts = [part for part in listing.path.split("/") if part]
    for index, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[: index + 1])))
    return render(
        request,
        "catalog/version_detail.html",
        {"dataset": dataset, "version": version, "listing": listing, "crumbs": crumbs},
    )
