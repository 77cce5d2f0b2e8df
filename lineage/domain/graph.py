"""Graph work on a lineage subgraph: walks, paths, layers, ordering, capping, diffs.

Pure networkx and Python, no ORM: the selectors fetch a depth-bounded
neighbourhood with SQL, build a ``networkx.DiGraph`` and hand it here. Nodes
carry plain attributes — ``kind`` (a string, so new kinds such as model versions
need no change here), ``label``, ``sublabel``, and for runs ``name``,
``namespace``, ``params``, ``code``. A node of kind ``more`` stands for nodes
left out of a layer; its ``hidden`` attribute says how many.

Imported data may hold cycles (a job that reads and rewrites one table). Every
function here terminates on them: walks keep a visited set, and the layout
first sets aside the edges that close a cycle (DFS back edges), lays out what is
left, and draws those edges as back edges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

Direction = Literal["upstream", "downstream", "both"]
DIRECTIONS: tuple[str, ...] = ("upstream", "downstream", "both")
MIN_DEPTH, MAX_DEPTH, DEFAULT_DEPTH = 1, 5, 2
MORE = "more"


class GraphError(ValueError):
    """A request the graph module cannot answer as asked (bad depth, unknown node)."""


def check_depth(depth: int) -> int:
    if not isinstance(depth, int) or isinstance(depth, bool) or not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise GraphError(f"depth must be a whole number from {MIN_DEPTH} to {MAX_DEPTH}, not {depth!r}.")
    return depth


def check_direction(direction: str) -> Direction:
    if direction not in DIRECTIONS:
        raise GraphError(f"direction must be upstream, downstream or both, not {direction!r}.")
    return direction  # type: ignore[return-value]


# -- walks -------------------------------------------------------------------------


def neighbourhood(graph: nx.DiGraph, focus: Hashable, depth: int, direction: Direction) -> nx.DiGraph:
    """The subgraph of nodes at most `depth` edges from `focus`, walking against
    the edges (upstream), along them (downstream) or both ways, each way on its own."""
    if focus not in graph:
        raise GraphError(f"there is no node {focus!r} in this graph.")
    check_depth(depth)
    keep: set[Hashable] = {focus}
    if direction in ("upstream", "both"):
        keep |= set(_within(graph.predecessors, focus, depth))
    if direction in ("downstream", "both"):
        keep |= set(_within(graph.successors, focus, depth))
    return graph.subgraph(keep).copy()


def _within(step: Any, start: Hashable, depth: int) -> dict[Hashable, int]:
    """Breadth-first distances from `start` by `step`, up to `depth`; never loops."""
    seen: dict[Hashable, int] = {start: 0}
    queue: deque[Hashable] = deque([start])
    while queue:
        node = queue.popleft()
        if seen[node] == depth:
            continue
        for neighbour in step(node):
            if neighbour not in seen:
                seen[neighbour] = seen[node] + 1
                queue.append(neighbour)
    del seen[start]
    return seen


def upstream(graph: nx.DiGraph, node: Hashable) -> set[Hashable]:
    """Everything `node` came from (within the graph given)."""
    return set(nx.ancestors(graph, node))


def downstream(graph: nx.DiGraph, node: Hashable) -> set[Hashable]:
    """Everything built from `node` (within the graph given)."""
    return set(nx.descendants(graph, node))


def path_between(graph: nx.DiGraph, source: Hashable, target: Hashable) -> list[Hashable] | None:
    """A shortest directed path from `source` to `target`, or from `target` to
    `source` when lineage runs that way; None when neither exists."""
    for start, end in ((source, target), (target, source)):
        try:
            return list(nx.shortest_path(graph, start, end))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            continue
    return None


def find_cycle(graph: nx.DiGraph) -> list[Hashable] | None:
    """The nodes of one directed cycle in order (first node repeated at the end), or None."""
    try:
        edges = nx.find_cycle(graph, orientation="original")
    except nx.NetworkXNoCycle:
        return None
    nodes = [edge[0] for edge in edges]
    return [*nodes, nodes[0]]


# -- layout ------------------------------------------------------------------------


def back_edges(graph: nx.DiGraph) -> set[tuple[Hashable, Hashable]]:
    """Edges whose removal leaves the graph acyclic: the back edges of a
    depth-first search, started from nodes in a stable order."""
    found: set[tuple[Hashable, Hashable]] = set()
    state: dict[Hashable, int] = {}  # 1 on the stack, 2 finished
    for root in sorted(graph.nodes, key=_stable):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(sorted(graph.successors(root), key=_stable)))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(graph.successors(child), key=_stable))))
            elif state[child] == 1:
                found.add((node, child))
    return found


def _stable(node: Hashable) -> tuple[str, str]:
    return (type(node).__name__, f"{node:>20}" if isinstance(node, int) else str(node))


def assign_layers(graph: nx.DiGraph) -> list[list[Hashable]]:
    """Layers left to right: topological generations of the graph with its back
    edges set aside, then each node with no inputs moved right next to the
    earliest node it feeds, so a source sits beside the run that reads it."""
    acyclic = nx.DiGraph()
    acyclic.add_nodes_from(graph.nodes)
    cut = back_edges(graph)
    acyclic.add_edges_from(edge for edge in graph.edges if edge not in cut)
    layer_of: dict[Hashable, int] = {}
    for index, generation in enumerate(nx.topological_generations(acyclic)):
        for node in generation:
            layer_of[node] = index
    for node in acyclic.nodes:
        successors = list(acyclic.successors(node))
        if acyclic.in_degree(node) == 0 and successors:
            layer_of[node] = max(layer_of[node], min(layer_of[s] for s in successors) - 1)
    if not layer_of:
        return []
    layers: list[list[Hashable]] = [[] for _ in range(max(layer_of.values()) + 1)]
    for node in sorted(layer_of, key=_stable):
        layers[layer_of[node]].append(node)
    return [layer for layer in layers if layer]


def count_crossings(graph: nx.DiGraph, layers: list[list[Hashable]]) -> int:
    """How many pairs of edges cross when each layer is drawn in the order given.
    Counts edges between any two layers, as they are drawn: straight between
    their ends' positions."""
    where = {
        node: (index, position) for index, layer in enumerate(layers) for position, node in enumerate(layer)
    }
    # Only edges between the same two layers can cross, so compare within groups.
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for src, dst in graph.edges:
        if src in where and dst in where and where[src][0] != where[dst][0]:
            (layer_a, pos_a), (layer_b, pos_b) = where[src], where[dst]
            if layer_a > layer_b:
                (layer_a, pos_a), (layer_b, pos_b) = (layer_b, pos_b), (layer_a, pos_a)
            groups.setdefault((layer_a, layer_b), []).append((pos_a, pos_b))
    crossings = 0
    for segments in groups.values():
        for i, (ap, aq) in enumerate(segments):
            for bp, bq in segments[i + 1 :]:
                if (ap - bp) * (aq - bq) < 0:
                    crossings += 1
    return crossings


def order_layers(graph: nx.DiGraph, layers: list[list[Hashable]], sweeps: int = 4) -> list[list[Hashable]]:
    """Reduce edge crossings by the barycentre heuristic: sweep left to right
    ordering each layer by the mean position of its neighbours in earlier
    layers, then right to left by later layers; keep the best ordering seen."""
    current = [list(layer) for layer in layers]
    best = [list(layer) for layer in current]
    best_crossings = count_crossings(graph, best)
    for sweep in range(sweeps * 2):
        forward = sweep % 2 == 0
        order = range(1, len(current)) if forward else range(len(current) - 2, -1, -1)
        for layer_index in order:
            current[layer_index] = _by_barycentre(graph, current, layer_index, forward)
        crossings = count_crossings(graph, current)
        if crossings < best_crossings:
            best, best_crossings = [list(layer) for layer in current], crossings
    return best


def _by_barycentre(
    graph: nx.DiGraph, layers: list[list[Hashable]], layer_index: int, forward: bool
) -> list[Hashable]:
    """One layer sorted by the mean position of its neighbours in earlier layers
    (forward) or later ones; a node with none keeps its place."""
    index_of = {node: i for i, layer in enumerate(layers) for node in layer}
    position = {node: p for layer in layers for p, node in enumerate(layer)}
    layer = layers[layer_index]
    keys: dict[Hashable, float] = {}
    for own_position, node in enumerate(layer):
        neighbours = graph.predecessors(node) if forward else graph.successors(node)
        placed = [
            position[n]
            for n in neighbours
            if n in index_of and (index_of[n] < layer_index if forward else index_of[n] > layer_index)
        ]
        keys[node] = sum(placed) / len(placed) if placed else float(own_position)
    return sorted(layer, key=lambda node: keys[node])


def cap_layers(
    graph: nx.DiGraph, layers: list[list[Hashable]], cap: int, focus: Hashable | None = None
) -> tuple[nx.DiGraph, list[list[Hashable]]]:
    """Keep at most `cap` nodes a layer; fold the others into one ``more`` node
    that says how many were left out, with their edges moved onto it.

    Kept first: the focus, then the nodes most connected to the rest, then a
    stable order. A layer's existing ``more`` node (from the fetch) absorbs the
    count, so a layer shows one "+N more" at most.
    """
    if cap < 1:
        raise GraphError("a layer must show at least one node.")
    capped = graph.copy()
    result: list[list[Hashable]] = []
    for index, layer in enumerate(layers):
        real = [n for n in layer if capped.nodes[n].get("kind") != MORE]
        mores = [n for n in layer if capped.nodes[n].get("kind") == MORE]
        if len(real) + len(mores) <= cap:
            result.append(list(layer))
            continue
        ranked = sorted(real, key=lambda n: (n != focus, -capped.degree(n), _stable(n)))
        keep, fold = ranked[: max(cap - 1, 1)], ranked[max(cap - 1, 1) :]
        hidden = len(fold) + sum(int(capped.nodes[m].get("hidden", 0)) for m in mores)
        more_id: Hashable = f"more:{index}"
        capped.add_node(more_id, kind=MORE, label=f"+{hidden:,} more", hidden=hidden)
        for node in [*fold, *mores]:
            for pred in list(capped.predecessors(node)):
                if pred not in fold and pred not in mores:
                    capped.add_edge(pred, more_id)
            for succ in list(capped.successors(node)):
                if succ not in fold and succ not in mores:
                    capped.add_edge(more_id, succ)
            capped.remove_node(node)
        result.append([n for n in layer if n in keep] + [more_id])
    return capped, result


@dataclass(slots=True)
class PlacedNode:
    id: Hashable
    kind: str
    label: str
    sublabel: str
    layer: int
    x: float
    y: float
    hidden: int = 0


@dataclass(slots=True)
class Layout:
    """Where everything goes: node boxes (top-left corners) and edges, in pixels."""

    nodes: dict[Hashable, PlacedNode]
    edges: list[tuple[Hashable, Hashable, bool]]  # (src, dst, closes a cycle)
    layers: list[list[Hashable]]
    width: float
    height: float
    focus: Hashable | None = None
    cycle: list[Hashable] | None = None
    graph: nx.DiGraph = field(default_factory=nx.DiGraph, repr=False)


NODE_WIDTH, NODE_HEIGHT = 196.0, 46.0
COLUMN_GAP, ROW_GAP, MARGIN = 56.0, 14.0, 16.0


def layout(graph: nx.DiGraph, focus: Hashable | None = None, cap: int = 12) -> Layout:
    """Lay a (small, fetched) graph out in layers left to right: layers, capping,
    crossing reduction, then pixel positions with each column centred."""
    layers = assign_layers(graph)
    capped, layers = cap_layers(graph, layers, cap, focus)
    layers = order_layers(capped, layers)
    tallest = max((len(layer) for layer in layers), default=0)
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    width = 2 * MARGIN + len(layers) * NODE_WIDTH + max(len(layers) - 1, 0) * COLUMN_GAP
    placed: dict[Hashable, PlacedNode] = {}
    for index, layer in enumerate(layers):
        column_height = len(layer) * NODE_HEIGHT + max(len(layer) - 1, 0) * ROW_GAP
        top = (height - column_height) / 2
        for position, node in enumerate(layer):
            attrs = capped.nodes[node]
            placed[node] = PlacedNode(
                id=node,
                kind=str(attrs.get("kind", "")),
                label=str(attrs.get("label", node)),
                sublabel=str(attrs.get("sublabel", "")),
                layer=index,
                x=MARGIN + index * (NODE_WIDTH + COLUMN_GAP),
                y=top + position * (NODE_HEIGHT + ROW_GAP),
                hidden=int(attrs.get("hidden", 0)),
            )
    cut = back_edges(capped)
    edges = [
        (src, dst, (src, dst) in cut)
        for src, dst in sorted(capped.edges, key=lambda e: (_stable(e[0]), _stable(e[1])))
    ]
    return Layout(
        nodes=placed,
        edges=edges,
        layers=layers,
        width=width,
        height=height,
        focus=focus,
        cycle=find_cycle(capped),
        graph=capped,
    )


# -- comparing two upstreams -----------------------------------------------------------


@dataclass(slots=True)
class RunChange:
    """One step that ran differently upstream of two versions."""

    job: str
    run_a: Hashable | None
    run_b: Hashable | None
    params: dict[str, tuple[Any, Any]]
    code: tuple[str, str] | None


@dataclass(slots=True)
class UpstreamChanges:
    only_a: list[Hashable]
    only_b: list[Hashable]
    common: list[Hashable]
    changed: list[RunChange]
    sources_only_a: list[Hashable]
    sources_only_b: list[Hashable]

    @property
    def identical(self) -> bool:
        return not (self.only_a or self.only_b or self.sources_only_a or self.sources_only_b)


_ABSENT = "(not set)"


def param_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Parameters whose values differ, as name -> (value in a, value in b)."""
    return {
        key: (a.get(key, _ABSENT), b.get(key, _ABSENT))
        for key in sorted(set(a) | set(b))
        if a.get(key, _ABSENT) != b.get(key, _ABSENT)
    }


def _job(graph: nx.DiGraph, node: Hashable) -> str:
    attrs = graph.nodes[node]
    namespace = attrs.get("namespace") or ""
    return f"{namespace}/{attrs.get('name', '')}" if namespace else str(attrs.get("name", ""))


def _latest(graph: nx.DiGraph, nodes: Iterable[Hashable]) -> Hashable:
    return max(nodes, key=lambda n: (str(graph.nodes[n].get("started") or ""), _stable(n)))


def upstream_changes(
    graph_a: nx.DiGraph, focus_a: Hashable, graph_b: nx.DiGraph, focus_b: Hashable
) -> UpstreamChanges:
    """What changed upstream between two versions: the runs and sources found
    above only one of them, and — for steps (same job name) found above both
    but as different runs — which parameters and code differ."""
    above_a = upstream(graph_a, focus_a) if focus_a in graph_a else set()
    above_b = upstream(graph_b, focus_b) if focus_b in graph_b else set()

    def of_kind(graph: nx.DiGraph, nodes: set[Hashable], kind: str) -> set[Hashable]:
        return {n for n in nodes if graph.nodes[n].get("kind") == kind}

    runs_a, runs_b = of_kind(graph_a, above_a, "run"), of_kind(graph_b, above_b, "run")
    sources_a = above_a - runs_a - {focus_b}
    sources_b = above_b - runs_b - {focus_a}
    jobs_a: dict[str, list[Hashable]] = {}
    jobs_b: dict[str, list[Hashable]] = {}
    for run in runs_a - runs_b:
        jobs_a.setdefault(_job(graph_a, run), []).append(run)
    for run in runs_b - runs_a:
        jobs_b.setdefault(_job(graph_b, run), []).append(run)
    changed = []
    for job in sorted(set(jobs_a) | set(jobs_b)):
        run_a = _latest(graph_a, jobs_a[job]) if job in jobs_a else None
        run_b = _latest(graph_b, jobs_b[job]) if job in jobs_b else None
        attrs_a = graph_a.nodes[run_a] if run_a is not None else {}
        attrs_b = graph_b.nodes[run_b] if run_b is not None else {}
        code_a, code_b = str(attrs_a.get("code") or ""), str(attrs_b.get("code") or "")
        changed.append(
            RunChange(
                job=job,
                run_a=run_a,
                run_b=run_b,
                params=param_diff(attrs_a.get("params") or {}, attrs_b.get("params") or {}),
                code=(code_a, code_b) if code_a != code_b else None,
            )
        )
    return UpstreamChanges(
        only_a=sorted(runs_a - runs_b, key=_stable),
        only_b=sorted(runs_b - runs_a, key=_stable),
        common=sorted(runs_a & runs_b, key=_stable),
        changed=changed,
        sources_only_a=sorted(sources_a - sources_b, key=_stable),
        sources_only_b=sorted(sources_b - sources_a, key=_stable),
    )


# -- export ------------------------------------------------------------------------


def edge_kind(graph: nx.DiGraph, src: Hashable, dst: Hashable) -> str:
    """'produced' for run → output, 'consumed' for input → run."""
    return "produced" if graph.nodes[src].get("kind") == "run" else "consumed"


def to_json(placed: Layout) -> dict[str, Any]:
    """The drawn graph as plain JSON: nodes with their attributes and positions,
    edges with their kind, and what was left out."""
    graph = placed.graph
    nodes = []
    for node_id, node in placed.nodes.items():
        attrs = {k: v for k, v in graph.nodes[node_id].items() if k not in ("label", "kind", "sublabel")}
        nodes.append(
            {
                "id": node_id,
                "kind": node.kind,
                "label": node.label,
                "sublabel": node.sublabel,
                "layer": node.layer,
                "x": node.x,
                "y": node.y,
                **attrs,
            }
        )
    return {
        "focus": placed.focus,
        "nodes": nodes,
        "edges": [
            {"source": src, "target": dst, "kind": edge_kind(graph, src, dst), "closes_cycle": back}
            for src, dst, back in placed.edges
        ],
        "hidden": sum(node.hidden for node in placed.nodes.values()),
        "cycle": placed.cycle,
    }
