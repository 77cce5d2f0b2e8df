"""The graph module on its own: no database, just networkx graphs built here."""

from __future__ import annotations

import networkx as nx
import pytest

from lineage.domain import graph as lgraph
from lineage.domain.render import render_svg


def pipeline() -> nx.DiGraph:
    """raw -> clean -> cleaned -> split -> {train, test}; train -> fit -> model."""
    g = nx.DiGraph()
    for node, kind in [
        ("raw", "source"),
        ("crawl", "source"),
        ("clean", "run"),
        ("cleaned", "version"),
        ("split", "run"),
        ("train", "version"),
        ("test", "version"),
        ("fit", "run"),
        ("model", "version"),
    ]:
        g.add_node(node, kind=kind, label=node, name=node)
    g.add_edges_from(
        [
            ("raw", "clean"),
            ("crawl", "clean"),
            ("clean", "cleaned"),
            ("cleaned", "split"),
            ("split", "train"),
            ("split", "test"),
            ("train", "fit"),
            ("fit", "model"),
        ]
    )
    return g


def test_neighbourhood_walks_each_direction_to_the_depth_asked():
    g = pipeline()
    assert set(lgraph.neighbourhood(g, "cleaned", 1, "upstream")) == {"cleaned", "clean"}
    assert set(lgraph.neighbourhood(g, "cleaned", 2, "upstream")) == {"cleaned", "clean", "raw", "crawl"}
    assert set(lgraph.neighbourhood(g, "cleaned", 2, "downstream")) == {"cleaned", "split", "train", "test"}
    both = lgraph.neighbourhood(g, "split", 1, "both")
    assert set(both) == {"split", "cleaned", "train", "test"}


def test_depth_and_direction_out_of_range_are_refused_with_a_reason():
    g = pipeline()
    for depth in (0, 6, -1, True):
        with pytest.raises(lgraph.GraphError, match="depth must be a whole number from 1 to 5"):
            lgraph.neighbourhood(g, "raw", depth, "both")
    with pytest.raises(lgraph.GraphError, match="direction must be upstream, downstream or both"):
        lgraph.check_direction("sideways")
    with pytest.raises(lgraph.GraphError, match="no node 'nope'"):
        lgraph.neighbourhood(g, "nope", 2, "both")


def test_upstream_downstream_and_paths():
    g = pipeline()
    assert lgraph.upstream(g, "model") == {"fit", "train", "split", "cleaned", "clean", "raw", "crawl"}
    assert lgraph.downstream(g, "cleaned") == {"split", "train", "test", "fit", "model"}
    assert lgraph.path_between(g, "raw", "model") == [
        "raw",
        "clean",
        "cleaned",
        "split",
        "train",
        "fit",
        "model",
    ]
    # Asked the other way round, the path still follows the data.
    assert lgraph.path_between(g, "model", "raw")[0] == "raw"
    assert lgraph.path_between(g, "test", "model") is None


def test_layers_run_left_to_right_and_sources_sit_next_to_their_reader():
    g = pipeline()
    g.add_node("late-source", kind="source", label="late")
    g.add_edge("late-source", "fit")
    layers = lgraph.assign_layers(g)
    layer_of = {node: i for i, layer in enumerate(layers) for node in layer}
    for src, dst in g.edges:
        assert layer_of[src] < layer_of[dst]
    # Not in layer 0 with the raw sources: beside the run that reads it.
    assert layer_of["late-source"] == layer_of["fit"] - 1


def test_barycentre_ordering_removes_avoidable_crossings():
    g = nx.DiGraph()
    g.add_edges_from([("a", "y"), ("b", "x"), ("c", "z"), ("x", "q"), ("y", "p")])
    layers = [["a", "b", "c"], ["x", "y", "z"], ["p", "q"]]
    assert lgraph.count_crossings(g, layers) > 0
    ordered = lgraph.order_layers(g, layers)
    assert lgraph.count_crossings(g, ordered) == 0
    assert sorted(map(sorted, ordered)) == sorted(map(sorted, layers))


def test_a_wide_layer_is_capped_with_a_count_of_what_was_left_out():
    g = nx.DiGraph()
    g.add_node("hub", kind="version", label="hub")
    for i in range(5000):
        g.add_node(f"run{i}", kind="run", label=f"run {i}")
        g.add_edge("hub", f"run{i}")
    placed = lgraph.layout(g, focus="hub", cap=12)
    second = placed.layers[1]
    assert len(second) == 12
    more = [placed.nodes[n] for n in second if placed.nodes[n].kind == "more"]
    assert len(more) == 1 and more[0].hidden == 4989 and more[0].label == "+4,989 more"
    assert ("hub", more[0].id, False) in placed.edges


def test_a_fetched_more_node_absorbs_the_layer_overflow():
    g = nx.DiGraph()
    g.add_node("focus", kind="version", label="focus")
    g.add_node("more:down:1", kind="more", label="+100 more", hidden=100)
    g.add_edge("focus", "more:down:1")
    for i in range(15):
        g.add_node(i, kind="run", label=str(i))
        g.add_edge("focus", i)
    placed = lgraph.layout(g, focus="focus", cap=12)
    mores = [n for n in placed.nodes.values() if n.kind == "more"]
    assert len(mores) == 1 and mores[0].hidden == 100 + 4


def test_cycles_are_laid_out_and_reported_never_looped_on():
    g = nx.DiGraph()
    g.add_edges_from([("table", "job"), ("job", "table"), ("job", "out")])
    for node in g:
        g.nodes[node].update(kind="run" if node == "job" else "source", label=node)
    assert lgraph.find_cycle(g) in (["table", "job", "table"], ["job", "table", "job"])
    placed = lgraph.layout(g, focus="table")
    assert placed.cycle is not None
    assert sum(1 for *_edge, back in placed.edges if back) == 1
    assert set(lgraph.neighbourhood(g, "table", 5, "both")) == {"table", "job", "out"}
    assert lgraph.upstream(g, "out") == {"job", "table"}


def test_upstream_changes_name_the_runs_and_parameters_that_differ():
    def lineage(threshold: float, extra_source: bool) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_node("crawl", kind="source", label="crawl")
        run = f"filter-{threshold}"
        g.add_node(
            run, kind="run", label="filter", name="filter", params={"threshold": threshold, "lang": "en"}
        )
        g.add_node("dedup", kind="run", label="dedup", name="dedup", params={"method": "minhash"})
        g.add_edges_from([("crawl", run), (run, "mid"), ("mid", "dedup"), ("dedup", "out")])
        if extra_source:
            g.add_node("blocklist", kind="source", label="blocklist")
            g.add_edge("blocklist", run)
        return g

    changes = lgraph.upstream_changes(lineage(0.8, False), "out", lineage(0.9, True), "out")
    assert changes.common == ["dedup"]
    assert changes.only_a == ["filter-0.8"] and changes.only_b == ["filter-0.9"]
    [change] = changes.changed
    assert change.job == "filter" and change.params == {"threshold": (0.8, 0.9)}
    assert changes.sources_only_b == ["blocklist"] and not changes.identical
    same = lgraph.upstream_changes(lineage(0.8, False), "out", lineage(0.8, False), "out")
    assert same.identical and same.changed == []


def test_the_svg_links_every_node_and_colours_it_by_kind():
    g = pipeline()
    placed = lgraph.layout(g, focus="cleaned")
    svg = render_svg(placed, href=lambda node: f"/n/{node}", selected="split")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for node in g:
        assert f'href="/n/{node}"' in svg
    assert "#fbf3e4" in svg and "#edf4ea" in svg and "#e7f0f6" in svg  # source, run, version
    assert 'class="node node-version focus"' in svg and "selected" in svg
    # Labels are escaped, not injected.
    g.nodes["raw"]["label"] = "<script>x</script>"
    assert "<script>" not in render_svg(lgraph.layout(g), href=lambda node: None)


def test_json_export_lists_nodes_edges_and_their_kinds():
    placed = lgraph.layout(pipeline(), focus="cleaned")
    data = lgraph.to_json(placed)
    assert data["focus"] == "cleaned"
    assert {n["id"] for n in data["nodes"]} == set(pipeline())
    kinds = {(e["source"], e["target"]): e["kind"] for e in data["edges"]}
    assert kinds[("raw", "clean")] == "consumed" and kinds[("clean", "cleaned")] == "produced"
    assert data["hidden"] == 0 and data["cycle"] is None


def test_an_unknown_kind_is_drawn_in_a_neutral_colour():
    g = nx.DiGraph()
    g.add_node("m", kind="model", label="fraud 3.1")
    g.add_node("x", kind="something-new", label="x")
    g.add_edge("m", "x")
    svg = render_svg(lgraph.layout(g), href=lambda node: None)
    assert "#f2ecf7" in svg and "#f3f4f6" in svg
