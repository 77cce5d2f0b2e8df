"""Retention planning: what is kept, where it lives, what is garbage — and the
property that no byte a kept version needs is ever deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle.domain.retention import DEFAULT_POLICIES, PackFacts, Policy, VersionFacts, decide_version, plan

NOW = datetime(2027, 6, 1, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Graph:
    trees: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    chunk_packs: dict[str, tuple[str, int]] = field(default_factory=dict)

    def tree(self, tree_id):
        return self.trees[tree_id]

    def chunks(self, digest):
        return self.files[digest]

    def chunk(self, chunk_id):
        return self.chunk_packs[chunk_id]


def _version(vid, branches=("main",), accessed=0, protections=(), readable=False):
    return VersionFacts(
        vid, f"t-{vid}", frozenset(branches), days_ago(accessed), tuple(protections), readable
    )


def test_main_is_kept_forever_and_cools_with_idleness():
    for idle, tier in ((0, "hot"), (29, "hot"), (30, "warm"), (179, "warm"), (180, "cold"), (400, "cold")):
        decision = decide_version(
            _version("v", accessed=idle), policies=DEFAULT_POLICIES, branch_last_commit={}, now=NOW
        )
        assert decision.kept and decision.tier == tier, idle
        assert decision.expires_on is None


def test_experiment_branches_expire_thirty_days_after_their_last_commit():
    young = decide_version(
        _version("v", ("exp/a",)),
        policies=DEFAULT_POLICIES,
        branch_last_commit={"exp/a": days_ago(10)},
        now=NOW,
    )
    assert young.kept and young.expires_on == days_ago(10) + timedelta(days=30)
    old = decide_version(
        _version("v", ("exp/a",)),
        policies=DEFAULT_POLICIES,
        branch_last_commit={"exp/a": days_ago(31)},
        now=NOW,
    )
    assert not old.kept
    on_main_too = decide_version(
        _version("v", ("exp/a", "main")),
        policies=DEFAULT_POLICIES,
        branch_last_commit={"exp/a": days_ago(31)},
        now=NOW,
    )
    assert on_main_too.kept


def test_protected_versions_are_kept_and_golden_stays_readable():
    golden = decide_version(
        _version("v", ("exp/a",), accessed=500, protections=("golden",), readable=True),
        policies=(*DEFAULT_POLICIES[:1], Policy("exp/*", expire_after_days=30, cold_after_days=60)),
        branch_last_commit={"exp/a": days_ago(300)},
        now=NOW,
    )
    assert golden.kept and golden.tier == "warm" and golden.reasons == ["golden"]
    unknown = decide_version(
        _version("v", ("scratch",)), policies=DEFAULT_POLICIES, branch_last_commit={}, now=NOW
    )
    assert unknown.kept and unknown.tier == "hot"


def _scenario():
    graph = Graph()
    # v1 on main (idle 200 days: cold), v2 on main (fresh: hot), v3 on an expired
    # experiment branch. v1 and v2 share chunk c-shared in pack P-shared.
    graph.trees = {"t-v1": ([], ["f1"]), "t-v2": ([], ["f2"]), "t-v3": ([], ["f3"])}
    graph.files = {"f1": ["c1", "c-shared"], "f2": ["c2", "c-shared"], "f3": ["c3"]}
    graph.chunk_packs = {
        "c1": ("P-old", 100),
        "c-shared": ("P-shared", 100),
        "c2": ("P-new", 100),
        "c3": ("P-exp", 100),
    }
    versions = [
        _version("v1", accessed=200),
        _version("v2", accessed=0),
        _version("v3", ("exp/x",), accessed=40),
    ]
    packs = [
        PackFacts("P-old", 150, "hot", days_ago(300), days_ago(300)),
        PackFacts("P-shared", 150, "warm", days_ago(300), days_ago(100)),
        PackFacts("P-new", 150, "hot", days_ago(1), days_ago(1)),
        PackFacts("P-exp", 150, "hot", days_ago(40), days_ago(40)),
        PackFacts("P-orphan", 500, "hot", days_ago(0.1), days_ago(0.1)),  # a crashed push, just now
        PackFacts("P-leased", 500, "hot", days_ago(5), days_ago(5), leased=True),
        PackFacts("P-mostly-dead", 1000, "hot", days_ago(50), days_ago(50)),
    ]
    graph.trees["t-v2"] = ([], ["f2", "f4"])
    graph.files["f4"] = ["c4"]
    graph.chunk_packs["c4"] = ("P-mostly-dead", 100)
    return versions, packs, graph


def test_a_small_pack_whose_chunks_are_all_live_is_not_repacked_however_big_its_index():
    graph = Graph(trees={"t-v1": ([], ["f1"])}, files={"f1": ["c1"]}, chunk_packs={"c1": ("P-tiny", 5)})
    packs = [PackFacts("P-tiny", 5 + 9 + 49 + 20, "hot", days_ago(10), days_ago(10), payload=5)]
    result = plan(
        versions=[_version("v1")],
        packs=packs,
        graph=graph,
        policies=DEFAULT_POLICIES,
        branch_last_commit={"main": days_ago(10)},
        now=NOW,
    )
    assert result.pack_tiers == {"P-tiny": "hot"}
    assert result.repacks == []


def test_a_pack_is_judged_mostly_dead_by_its_chunk_bytes_not_its_size():
    graph = Graph(
        trees={"t-v1": ([], ["f1"])},
        files={"f1": ["c1"]},
        chunk_packs={"c1": ("P", 40), "c2": ("P", 60)},
    )

    def repacks(payload_dead: int) -> list[str]:
        chunk_packs = {"c1": ("P", 40), "c2": ("P", payload_dead)}
        pack = PackFacts(
            "P", 40 + payload_dead + 1_000, "hot", days_ago(10), days_ago(10), payload=40 + payload_dead
        )
        return plan(
            versions=[_version("v1")],
            packs=[pack],
            graph=Graph(graph.trees, graph.files, chunk_packs),
            policies=DEFAULT_POLICIES,
            branch_last_commit={"main": days_ago(10)},
            now=NOW,
        ).repacks

    assert repacks(60) == ["P"]  # 40 of 100 chunk bytes live
    assert repacks(30) == []  # 40 of 70: most of it is live, though the index is not


def test_plan_moves_deletes_defers_and_repacks():
    versions, packs, graph = _scenario()
    result = plan(
        versions=versions,
        packs=packs,
        graph=graph,
        policies=DEFAULT_POLICIES,
        branch_last_commit={"exp/x": days_ago(40), "main": days_ago(0)},
        now=NOW,
    )
    assert result.expired == ["v3"]
    assert result.pack_tiers == {"P-old": "cold", "P-shared": "hot", "P-new": "hot", "P-mostly-dead": "hot"}
    assert sorted(result.moves) == [("P-old", "hot", "cold"), ("P-shared", "warm", "hot")]
    assert result.deletions == ["P-exp"]
    assert dict(result.deferred) == {
        "P-orphan": "younger than the grace period",
        "P-leased": "leased by an upload in flight",
    }
    assert result.repacks == ["P-mostly-dead"]
    assert result.freed_bytes == {"hot": 150, "warm": 0, "cold": 0}
    assert result.early_charges == Decimal(0)  # P-shared served its 30 warm days


@st.composite
def histories(draw):
    """Random object graphs, versions on random branches with random ages and
    protections, and random policies."""
    pack_count = draw(st.integers(1, 8))
    chunk_count = draw(st.integers(1, 30))
    graph = Graph()
    for index in range(chunk_count):
        graph.chunk_packs[f"c{index}"] = (
            f"P{draw(st.integers(0, pack_count - 1))}",
            draw(st.integers(1, 50)),
        )
    file_count = draw(st.integers(1, 20))
    for index in range(file_count):
        graph.files[f"f{index}"] = draw(
            st.lists(st.sampled_from(sorted(graph.chunk_packs)), min_size=0, max_size=4)
        )
    versions = []
    branch_names = ["main", "exp/a", "exp/b", "dev", "release/1"]
    for index in range(draw(st.integers(1, 12))):
        files = draw(st.lists(st.sampled_from(sorted(graph.files)), max_size=5))
        subtree = f"s{index}"
        graph.trees[subtree] = ([], files[: len(files) // 2])
        graph.trees[f"t-v{index}"] = ([subtree], files[len(files) // 2 :])
        protections = draw(
            st.lists(st.sampled_from(["golden", "tag v1", "pinned by model fraud@3.1"]), max_size=2)
        )
        versions.append(
            VersionFacts(
                f"v{index}",
                f"t-v{index}",
                frozenset(draw(st.lists(st.sampled_from(branch_names), max_size=2))),
                days_ago(draw(st.integers(0, 400))),
                tuple(protections),
                "golden" in protections,
            )
        )
    policies = [
        Policy(
            pattern,
            keep_forever=draw(st.booleans()),
            expire_after_days=draw(st.sampled_from([None, 0, 30, 90])),
            warm_after_days=draw(st.sampled_from([None, 30])),
            cold_after_days=draw(st.sampled_from([None, 180])),
        )
        for pattern in draw(
            st.lists(st.sampled_from(["main", "exp/*", "release/*", "*"]), max_size=3, unique=True)
        )
    ]
    # Each pack's payload is its chunks' bytes; its index and footer come on top,
    # and may outweigh a small payload.
    payloads = {f"P{index}": 0 for index in range(pack_count)}
    for pack_id, length in graph.chunk_packs.values():
        payloads[pack_id] += length
    packs = [
        PackFacts(
            f"P{index}",
            payloads[f"P{index}"] + draw(st.integers(0, 2_000)),
            draw(st.sampled_from(["hot", "warm", "cold"])),
            days_ago(draw(st.integers(0, 400))),
            days_ago(draw(st.integers(0, 100))),
            leased=draw(st.booleans()),
            payload=payloads[f"P{index}"],
        )
        for index in range(pack_count)
    ]
    commits = {name: days_ago(draw(st.integers(0, 400))) for name in branch_names}
    return versions, packs, graph, policies, commits


def _reachable_chunks(graph, root):
    chunks, stack = set(), [root]
    while stack:
        subtrees, files = graph.tree(stack.pop())
        stack.extend(subtrees)
        for digest in files:
            chunks.update(graph.chunks(digest))
    return chunks


@settings(max_examples=200, deadline=None)
@given(histories())
def test_no_byte_reachable_from_a_kept_version_is_ever_deleted(history):
    versions, packs, graph, policies, commits = history
    result = plan(
        versions=versions, packs=packs, graph=graph, policies=policies, branch_last_commit=commits, now=NOW
    )
    deleted = set(result.deletions)
    for version in versions:
        decision = result.versions[version.id]
        if version.protections:
            assert decision.kept, version
        if version.stay_readable:
            assert decision.tier in ("hot", "warm")
        if decision.kept:
            for chunk_id in _reachable_chunks(graph, version.root_tree):
                pack_id = graph.chunk(chunk_id)[0]
                assert pack_id not in deleted, (version, chunk_id)
                # The pack ends up at least as hot as the version needs.
                order = {"hot": 0, "warm": 1, "cold": 2}
                assert order[result.pack_tiers[pack_id]] <= order[decision.tier]
    for pack in packs:
        if pack.leased:
            assert pack.id not in deleted
    # A repack frees dead chunk bytes: a pack whose chunks are all live is never
    # repacked (the copy would be the same pack, with the same name).
    live = set().union(
        *(_reachable_chunks(graph, v.root_tree) for v in versions if result.versions[v.id].kept)
    )
    for pack in packs:
        chunks = [chunk_id for chunk_id, (pack_id, _) in graph.chunk_packs.items() if pack_id == pack.id]
        if pack.id in result.repacks:
            assert not set(chunks) <= live, pack
            live_bytes = sum(graph.chunk_packs[c][1] for c in chunks if c in live)
            assert live_bytes < 0.5 * pack.payload, pack
