"""Model versions in the lineage graph.

A model version is a node of lineage's graph, but lineage imports nothing of
the registry: ``register`` (called from ``RegistryConfig.ready()``) fills the
tables lineage reads to draw, describe and make model nodes
(``lineage.selectors.NODE_ANNOTATORS`` and ``NODE_DETAILS``,
``lineage.services.runs.NODE_MAKERS``), to name the model versions on a dataset
version's lineage section (``VERSION_MENTIONS``), and to make pins and model
versions in a DVC import (``lineage.ingest.dvc.DVC_EXTENSIONS``).
"""

from __future__ import annotations

import networkx as nx
from django.urls import reverse

from catalog import permissions
from catalog.models import Version
from lineage import selectors as lineage_selectors
from lineage.ingest import dvc as lineage_dvc
from lineage.models import Node
from lineage.selectors import Mention, NodeExtra
from lineage.services import runs as lineage_runs
from registry.models import ModelPin, ModelVersion
from registry.selectors import model_visible_pins
from registry.services.dvc import train_stages
from registry.services.training import model_as_dict, model_node_for


def register() -> None:
    """Fill lineage's tables for model versions (once, however often it is called)."""
    lineage_selectors.NODE_ANNOTATORS[Node.Kind.MODEL] = annotate
    lineage_selectors.NODE_DETAILS[Node.Kind.MODEL] = node_details
    lineage_runs.NODE_MAKERS[Node.Kind.MODEL] = model_node_for
    if models_that_used not in lineage_selectors.VERSION_MENTIONS:
        lineage_selectors.VERSION_MENTIONS.append(models_that_used)
    if train_stages not in lineage_dvc.DVC_EXTENSIONS:
        lineage_dvc.DVC_EXTENSIONS.append(train_stages)


def annotate(graph: nx.DiGraph, ids: list[int]) -> None:
    """The model nodes among `ids`, in one query: a sublabel with the date and
    the regression flag, and the model's name and version for the JSON export."""
    models = ModelVersion.objects.filter(node_id__in=ids)
    for model in models.only("node_id", "name", "version", "created", "regressions"):
        flag = " · regression" if model.regressions else ""
        graph.add_node(
            model.node_id,
            sublabel=f"model · {model.created:%b %d}{flag}",
            model=model.name,
            model_version=model.version,
        )


def node_details(user: permissions.User, node: Node) -> NodeExtra | None:
    """A model node's side panel and API fields; the pins on datasets `user` may
    not read are counted, not shown."""
    model = ModelVersion.objects.filter(node=node).select_related("predecessor").first()
    if model is None:
        return None
    pins, hidden = model_visible_pins(user, model)
    return NodeExtra(
        template="registry/_node.html",
        context={"model": model},
        data=model_as_dict(model, pins=pins, hidden=hidden),
    )


def models_that_used(version: Version, limit: int) -> tuple[str, list[Mention]]:
    """The model versions that pinned `version`, newest first: one query."""
    pins = ModelPin.objects.filter(version=version).select_related("model").order_by("-model__created")
    return "Models that used it", [
        Mention(
            label=pin.model.spec,
            url=reverse("registry:model_version", args=[pin.model.name, pin.model.version]),
        )
        for pin in pins[:limit]
    ]
