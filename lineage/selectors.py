"""Reads of the lineage graph: a depth-bounded neighbourhood fetched by SQL,
handed to ``lineage.domain.graph`` for the graph work, and shaped for pages and the API.

The fetch never loads the whole graph. It walks out from the focus ring by
ring, one indexed query per ring and direction, keeping at most ``cap`` nodes a
ring (the newest) and counting the rest for a "+N more" node; then one query
for the edges among the kept nodes and one per detail table. A depth-5 page is
thus about twenty small queries whatever the size of the graph, and nodes of
datasets the user may not read are dropped inside the same queries.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from catalog import permissions
from catalog.errors import NotFound, UserError
from catalog.models import Dataset, Version
from catalog.selectors import resolve_spec
from lineage.domain import graph as lgraph
from lineage.models import Edge, Node, Run, Source
from lineage.services.runs import run_as_dict

LAYER_CAP = 12
# Rows read per ring before switching to a count: a node with a million
# consumers still costs one bounded read and one COUNT.
_RING_ROW_BUDGET = 20_000
_PATH_NODE_BUDGET = 50_000


@dataclass(slots=True)
class NodeExtra:
    """What the app owning a node's kind says about one node: a part of the
    graph page's side panel, and fields of the node's JSON in the API."""

    template: str  # rendered in the side panel, with `extra` set to `context`
    context: dict[str, Any]
    data: dict[str, Any]


@dataclass(slots=True)
class Mention:
    """Something built from a dataset version, named on its lineage section."""

    label: str
    url: str


# Apps above lineage describe the nodes of their own kinds here, so lineage
# imports none of them; the registry fills these for model versions in
# RegistryConfig.ready(). NODE_ANNOTATORS: kind -> sets the graph attributes of
# that kind's nodes among the ids given, in one query. NODE_DETAILS: kind -> a
# node's side panel and API fields, for a user. VERSION_MENTIONS: what was built
# from a version runs used (a heading, at most `limit` mentions, one query).
NODE_ANNOTATORS: dict[str, Callable[[nx.DiGraph, list[int]], None]] = {}
NODE_DETAILS: dict[str, Callable[[permissions.User, Node], NodeExtra | None]] = {}
VERSION_MENTIONS: list[Callable[[Version, int], tuple[str, list[Mention]]]] = []


def _as_graph_error(error: lgraph.GraphError) -> UserError:
    return UserError(str(error))


def check_depth(depth: Any) -> int:
    """Depth from a query string or JSON: a whole number 1–5, else UserError."""
    try:
        value = int(depth) if not isinstance(depth, int) else depth
    except (TypeError, ValueError):
        raise UserError(
            f"depth must be a whole number from {lgraph.MIN_DEPTH} to {lgraph.MAX_DEPTH}, not {depth!r}."
        ) from None
    try:
        return lgraph.check_depth(value)
    except lgraph.GraphError as error:
        raise _as_graph_error(error) from None


def check_direction(direction: Any) -> lgraph.Direction:
    try:
        return lgraph.check_direction(str(direction))
    except lgraph.GraphError as error:
        raise _as_graph_error(error) from None


def _hidden_datasets(user: permissions.User) -> list[int]:
    """Ids of datasets `user` may not read (usually few: restricted ones)."""
    if user is None or permissions.is_admin(user):
        return []
    visible = permissions.visible_datasets(user).values("pk")
    return list(Dataset.objects.exclude(pk__in=visible).values_list("pk", flat=True))


def node_get(*, user: permissions.User, node_id: Any) -> Node:
    """The node, if it exists and `user` may see it (NotFound otherwise)."""
    try:
        pk = int(node_id)
    except (TypeError, ValueError):
        raise NotFound(f"there is no lineage node {node_id!r}: node ids are numbers.") from None
    node = Node.objects.filter(pk=pk).select_related("dataset").first()
    if node is None or (node.dataset is not None and not permissions.can_read(user, node.dataset)):
        raise NotFound(f"there is no lineage node {pk}.")
    return node


def node_for_version(*, user: permissions.User, version: Version) -> Node | None:
    permissions.require_read(user, version.dataset)
    return Node.objects.filter(version=version).first()


# -- the bounded fetch ---------------------------------------------------------------


@dataclass(slots=True)
class Fetched:
    graph: nx.DiGraph
    focus: int
    hidden: int = 0
    queries: list[str] = field(default_factory=list)


def _ring(
    frontier: list[int], visited: set[int], downstream: bool, hidden_datasets: list[int], cap: int
) -> tuple[list[int], int, list[tuple[int, int]], set[int]]:
    """One ring out from `frontier`: (kept neighbours, how many left out, edges
    frontier↔kept, frontier nodes that have neighbours left out)."""
    near, far = ("src_id", "dst_id") if downstream else ("dst_id", "src_id")
    edges = Edge.objects.filter(**{f"{near}__in": frontier}).exclude(**{f"{far}__in": visited})
    if hidden_datasets:
        other = "dst" if downstream else "src"
        edges = edges.exclude(**{f"{other}__dataset_id__in": hidden_datasets})
    rows = list(edges.order_by(f"-{far}").values_list(near, far)[:_RING_ROW_BUDGET])
    neighbours = sorted({row[1] for row in rows}, reverse=True)
    total = len(neighbours)
    if len(rows) == _RING_ROW_BUDGET:
        total = edges.values(far).distinct().count()
    kept = neighbours if total <= cap else neighbours[: cap - 1]
    kept_set = set(kept)
    ring_edges = [(a, b) for a, b in rows if b in kept_set]
    with_more = {a for a, b in rows if b not in kept_set}
    if len(rows) == _RING_ROW_BUDGET and total > len(kept):
        with_more = set(frontier)
    return kept, total - len(kept), ring_edges, with_more


def neighbourhood_fetch(
    *, user: permissions.User, focus: Node, depth: int, direction: str, cap: int = LAYER_CAP
) -> Fetched:
    """The neighbourhood of `focus` as a networkx graph with node attributes."""
    return _neighbourhood(
        user=user, focus=focus, depth=check_depth(depth), direction=check_direction(direction), cap=cap
    )


def _neighbourhood(*, user: permissions.User, focus: Node, depth: int, direction: str, cap: int) -> Fetched:
    """`neighbourhood_fetch` with a depth already checked by its caller (the model
    page walks further upstream than the graph page's 1–5, to reach raw sources)."""
    hidden_datasets = _hidden_datasets(user)
    graph = nx.DiGraph()
    visited: set[int] = {focus.pk}
    total_hidden = 0
    more_nodes: dict[str, tuple[int, set[int], bool]] = {}
    for downstream in (False, True):
        if direction == ("downstream" if not downstream else "upstream"):
            continue
        frontier = [focus.pk]
        for ring in range(1, depth + 1):
            if not frontier:
                break
            kept, left_out, _edges, with_more = _ring(frontier, visited, downstream, hidden_datasets, cap)
            visited |= set(kept)
            if left_out:
                total_hidden += left_out
                more_nodes[f"more:{'down' if downstream else 'up'}:{ring}"] = (
                    left_out,
                    with_more,
                    downstream,
                )
            frontier = kept
    ids = sorted(visited)
    graph.add_nodes_from(ids)
    graph.add_edges_from(Edge.objects.filter(src_id__in=ids, dst_id__in=ids).values_list("src_id", "dst_id"))
    _annotate(graph, ids)
    for more_id, (count, attached, downstream) in more_nodes.items():
        graph.add_node(more_id, kind=lgraph.MORE, label=f"+{count:,} more", hidden=count)
        for node_id in attached:
            if downstream:
                graph.add_edge(node_id, more_id)
            else:
                graph.add_edge(more_id, node_id)
    return Fetched(graph=graph, focus=focus.pk, hidden=total_hidden)


def _annotate(graph: nx.DiGraph, ids: list[int]) -> None:
    """Fill node attributes from the node and detail tables: four queries, and
    one more for each kind an app above lineage annotates (model versions)."""
    node_of_version: dict[str, int] = {}
    of_kind: dict[str, list[int]] = {}
    for node in Node.objects.filter(pk__in=ids).only("id", "kind", "label", "version_id"):
        graph.add_node(node.pk, kind=node.kind, label=node.label, sublabel="")
        if node.kind in NODE_ANNOTATORS:
            of_kind.setdefault(node.kind, []).append(node.pk)
        if node.version_id:
            node_of_version[node.version_id] = node.pk
    for run in Run.objects.filter(node_id__in=ids).defer("facets", "command"):
        when = run.ended or run.started
        graph.add_node(
            run.node_id,
            sublabel=f"{run.step} · {run.status}" + (f" · {when:%b %d}" if when else ""),
            name=run.name,
            namespace=run.namespace,
            step=run.step,
            status=run.status,
            params=run.params,
            code=run.code_ref,
            started=run.started.isoformat() if run.started else None,
        )
    for source in Source.objects.filter(node_id__in=ids).defer("facets", "description"):
        tag = f" · {source.version_tag[:10]}" if source.version_tag else ""
        graph.add_node(
            source.node_id,
            sublabel=(source.namespace or "source") + tag,
            uri=source.uri,
            version_tag=source.version_tag,
        )
    for kind, kind_ids in of_kind.items():
        NODE_ANNOTATORS[kind](graph, kind_ids)
    versions = Version.objects.filter(pk__in=list(node_of_version)).select_related("dataset")
    for version in versions.only("id", "semver", "stage", "golden", "rolled_back", "dataset__name"):
        flags = " · golden" if version.golden else (" · rolled back" if version.rolled_back else "")
        graph.add_node(
            node_of_version[version.id],
            sublabel=f"{version.stage} · {version.id[:10]}{flags}",
            dataset=version.dataset.name,
            semver=version.semver,
            version_id=version.id,
        )


# -- what a page needs -------------------------------------------------------------


@dataclass(slots=True)
class NodeDetails:
    """Everything the side panel says about one node."""

    node: Node
    run: Run | None = None
    source: Source | None = None
    version: Version | None = None
    # What the app owning the node's kind says about it (a model version).
    extra: NodeExtra | None = None
    inputs: int = 0
    outputs: int = 0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.node.pk,
            "kind": self.node.kind,
            "label": self.node.label,
            "inputs": self.inputs,
            "outputs": self.outputs,
        }
        if self.run is not None:
            data.update(run_as_dict(self.run))
            data["facets"] = {k: v for k, v in self.run.facets.items() if not k.startswith("_")}
        if self.source is not None:
            data.update(
                uri=self.source.uri,
                namespace=self.source.namespace,
                name=self.source.name,
                version=self.source.version_tag,
                description=self.source.description,
                owner=self.source.owner,
                facets=self.source.facets,
            )
        if self.extra is not None:
            data.update(self.extra.data)
            data["id"] = self.node.pk
        if self.version is not None:
            data.update(
                dataset=self.version.dataset.name,
                version=self.version.id,
                semver=self.version.semver,
                stage=self.version.stage,
                created=self.version.created.isoformat(),
                author=self.version.author,
            )
        return data


def node_details(*, user: permissions.User, node: Node) -> NodeDetails:
    details = NodeDetails(node=node)
    if node.kind == Node.Kind.RUN:
        details.run = Run.objects.filter(node=node).first()
    elif node.kind == Node.Kind.SOURCE:
        details.source = Source.objects.filter(node=node).first()
    elif node.kind in NODE_DETAILS:
        details.extra = NODE_DETAILS[node.kind](user, node)
    elif node.version_id:
        details.version = Version.objects.select_related("dataset").filter(pk=node.version_id).first()
    details.inputs = Edge.objects.filter(dst=node).count()
    details.outputs = Edge.objects.filter(src=node).count()
    return details


@dataclass(slots=True)
class LineageView:
    focus: Node
    details: NodeDetails
    layout: lgraph.Layout
    depth: int
    direction: str
    hidden: int


def lineage_view(
    *,
    user: permissions.User,
    node_id: Any,
    depth: Any = lgraph.DEFAULT_DEPTH,
    direction: Any = "both",
    selected: Any = None,
    cap: int = LAYER_CAP,
) -> LineageView:
    """The graph around a node, laid out, with the selected node's details."""
    depth = check_depth(depth)
    direction = check_direction(direction)
    focus = node_get(user=user, node_id=node_id)
    fetched = neighbourhood_fetch(user=user, focus=focus, depth=depth, direction=direction, cap=cap)
    placed = lgraph.layout(fetched.graph, focus=focus.pk, cap=cap)
    chosen = focus
    if selected not in (None, "", str(focus.pk)):
        chosen = node_get(user=user, node_id=selected)
    return LineageView(
        focus=focus,
        details=node_details(user=user, node=chosen),
        layout=placed,
        depth=depth,
        direction=direction,
        hidden=sum(n.hidden for n in placed.nodes.values()),
    )


def graph_json(view: LineageView) -> dict[str, Any]:
    data = lgraph.to_json(view.layout)
    data.update(depth=view.depth, direction=view.direction)
    return data


# -- queries: upstream, downstream, paths, changes ---------------------------------


def lineage_walk(
    *, user: permissions.User, node_id: Any, direction: str, depth: Any = lgraph.MAX_DEPTH, cap: int = 500
) -> tuple[Node, nx.DiGraph]:
    """Upstream ("everything it came from") or downstream ("everything built
    from it") of a node, to `depth` rings of at most `cap` nodes each."""
    focus = node_get(user=user, node_id=node_id)
    fetched = neighbourhood_fetch(user=user, focus=focus, depth=depth, direction=direction, cap=cap)
    return focus, fetched.graph


def lineage_path(
    *, user: permissions.User, source_id: Any, target_id: Any, max_depth: int = 12
) -> list[Node]:
    """The nodes on a shortest path between two nodes (either way round),
    walking down from each by at most `max_depth` edges."""
    source = node_get(user=user, node_id=source_id)
    target = node_get(user=user, node_id=target_id)
    hidden_datasets = _hidden_datasets(user)
    for start, end in ((source, target), (target, source)):
        parents: dict[int, int | None] = {start.pk: None}
        frontier = [start.pk]
        for _ in range(max_depth):
            if not frontier or end.pk in parents:
                break
            edges = Edge.objects.filter(src_id__in=frontier)
            if hidden_datasets:
                edges = edges.exclude(dst__dataset_id__in=hidden_datasets)
            next_frontier = []
            for src, dst in edges.values_list("src_id", "dst_id"):
                if dst not in parents:
                    parents[dst] = src
                    next_frontier.append(dst)
            if len(parents) > _PATH_NODE_BUDGET:
                raise UserError("the search for a path passed 50,000 nodes; pick two nodes closer together.")
            frontier = next_frontier
        if end.pk in parents:
            chain: list[int] = []
            cursor: int | None = end.pk
            while cursor is not None:
                chain.append(cursor)
                cursor = parents[cursor]
            chain.reverse()
            by_id = Node.objects.in_bulk(chain)
            return [by_id[i] for i in chain]
    raise NotFound(f"no path joins node {source.pk} and node {target.pk} within {max_depth} steps.")


@dataclass(slots=True)
class Changes:
    version_a: Version
    version_b: Version
    node_a: Node | None
    node_b: Node | None
    changes: lgraph.UpstreamChanges | None
    labels: dict[Hashable, str]

    def as_dict(self) -> dict[str, Any]:
        def named(ids: list[Hashable]) -> list[dict[str, Any]]:
            return [{"id": i, "label": self.labels.get(i, str(i))} for i in ids]

        changes = self.changes
        return {
            "a": {
                "version": self.version_a.id,
                "label": str(self.version_a),
                "node": getattr(self.node_a, "pk", None),
            },
            "b": {
                "version": self.version_b.id,
                "label": str(self.version_b),
                "node": getattr(self.node_b, "pk", None),
            },
            "identical": changes.identical if changes else True,
            "runs_only_a": named(changes.only_a) if changes else [],
            "runs_only_b": named(changes.only_b) if changes else [],
            "sources_only_a": named(changes.sources_only_a) if changes else [],
            "sources_only_b": named(changes.sources_only_b) if changes else [],
            "changed_steps": [
                {
                    "step": change.job,
                    "run_a": change.run_a,
                    "run_b": change.run_b,
                    "params": {key: {"a": a, "b": b} for key, (a, b) in change.params.items()},
                    "code": {"a": change.code[0], "b": change.code[1]} if change.code else None,
                }
                for change in (changes.changed if changes else [])
            ],
        }


def upstream_changes(
    *, user: permissions.User, spec_a: str, spec_b: str, depth: Any = lgraph.MAX_DEPTH
) -> Changes:
    """What changed upstream between two dataset versions ('reviews@1.2.0')."""
    _, version_a = resolve_spec(spec_a, user)
    _, version_b = resolve_spec(spec_b, user)
    node_a = Node.objects.filter(version=version_a).first()
    node_b = Node.objects.filter(version=version_b).first()
    graphs = []
    for node in (node_a, node_b):
        if node is None:
            graphs.append(nx.DiGraph())
        else:
            fetched = neighbourhood_fetch(user=user, focus=node, depth=depth, direction="upstream", cap=500)
            graphs.append(fetched.graph)
    focus_a = node_a.pk if node_a else "a"
    focus_b = node_b.pk if node_b else "b"
    for graph, focus in zip(graphs, (focus_a, focus_b), strict=True):
        graph.add_node(focus, kind="version")
        graph.remove_nodes_from([n for n, kind in graph.nodes(data="kind") if kind == lgraph.MORE])
    changes = lgraph.upstream_changes(graphs[0], focus_a, graphs[1], focus_b)
    labels: dict[Hashable, str] = {}
    for graph in graphs:
        labels.update({n: str(label) for n, label in graph.nodes(data="label") if label})
    return Changes(version_a, version_b, node_a, node_b, changes, labels)


def run_list(*, user: permissions.User, limit: int = 50) -> list[Run]:
    """The latest runs, newest first, in one query."""
    return list(Run.objects.select_related("node").order_by("-node_id")[:limit])


# -- the section on dataset and version pages ----------------------------------------


def section_for(user: permissions.User, version: Version, cap: int = 6) -> dict[str, Any]:
    """What ``lineage/_section.html`` shows for a version: its direct lineage
    (depth 1, both ways) drawn small, counts, what apps above lineage name as
    built from it (the model versions that pinned it), and links. Seven queries
    (and one per mention provider when runs used it), or one when the version
    has no recorded lineage."""
    node = Node.objects.filter(version=version).first()
    if node is None or not permissions.can_read(user, version.dataset):
        return {"version": version, "node": None}
    fetched = neighbourhood_fetch(user=user, focus=node, depth=1, direction="both", cap=cap)
    placed = lgraph.layout(fetched.graph, focus=node.pk, cap=cap)
    producers = [
        n for n in fetched.graph.predecessors(node.pk) if fetched.graph.nodes[n].get("kind") == "run"
    ]
    consumers = [n for n in fetched.graph.successors(node.pk) if fetched.graph.nodes[n].get("kind") == "run"]
    # What was built from this version (model versions that pinned it): asked only
    # when runs used it, one query each.
    mentions = [mention(version, cap) for mention in VERSION_MENTIONS] if consumers else []
    return {
        "version": version,
        "node": node,
        "layout": placed,
        "produced_by": [fetched.graph.nodes[n] | {"id": n} for n in producers],
        "consumed_by": len(consumers),
        "mentions": [(heading, named) for heading, named in mentions if named],
    }
