"""Retention planning: which versions expire, which tier each pack belongs in, which
packs are garbage, and what it all costs — as a plan, before anything is touched.

Plain Python, no Django: the catalog feeds it facts (versions, their branches and
protections, the object graph, packs) and shows or applies the plan it returns.

The rules (DESIGN.md, "Retention, tiers, cost"):

- A version is *kept* if it is protected (golden, tagged, pinned by a training run
  or model version, the target of a pending rollback) or belongs to a branch whose
  policy keeps it (kept forever, or its branch committed within the policy's expiry
  window). Everything else *expires* — a branch's head too, once its whole branch
  has expired: the history stays, the bytes go.
- Each kept version needs a tier: hot, then warm after `warm_after_days` without
  access, cold after `cold_after_days`. Golden versions and rollback targets stay
  readable: warm at most, never cold.
- Garbage collection is mark and sweep: starting from kept versions, every tree,
  file, chunk and pack they reach is marked with the hottest tier any of them
  needs. A pack nothing marks is garbage — deleted only once older than the grace
  period and not leased by an upload in flight. A pack mostly dead is repacked.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from lifecycle.domain.costs import MINIMUM_DAYS, Prices, early_deletion_charge

HOT, WARM, COLD = "hot", "warm", "cold"
_RANK = {HOT: 0, WARM: 1, COLD: 2}


def hotter(a: str, b: str) -> str:
    return a if _RANK[a] <= _RANK[b] else b


@dataclass(frozen=True)
class Policy:
    """A retention policy for the branches whose names match `pattern` (fnmatch)."""

    pattern: str
    keep_forever: bool = False
    expire_after_days: int | None = None  # after the branch's last commit
    warm_after_days: int | None = None  # without access
    cold_after_days: int | None = None

    def matches(self, branch: str) -> bool:
        # A branch may be named with its dataset, "reviews:exp/x" (neither a dataset
        # nor a ref name can hold a colon); the pattern matches the branch part.
        return fnmatch.fnmatchcase(branch.rsplit(":", 1)[-1], self.pattern)


DEFAULT_POLICIES = (
    Policy("main", keep_forever=True, warm_after_days=30, cold_after_days=180),
    Policy("exp/*", expire_after_days=30),
)


@dataclass(frozen=True)
class VersionFacts:
    id: str
    root_tree: str
    branches: frozenset[str]  # branches whose history holds it
    last_access: datetime
    protections: tuple[str, ...] = ()  # why it is protected, in words
    stay_readable: bool = False  # golden or a rollback target: never cold


@dataclass(frozen=True)
class PackFacts:
    id: str
    size: int
    tier: str
    created: datetime
    tier_since: datetime
    leased: bool = False  # an upload in flight was told its chunks exist
    payload: int | None = None  # its chunks' bytes, without index and footer; None: all of size


class ObjectGraph(Protocol):
    def tree(self, tree_id: str) -> tuple[Sequence[str], Sequence[str]]:
        """(subtree ids, file digests) directly below a tree."""

    def chunks(self, digest: str) -> Sequence[str]:
        """The chunk ids of a file."""

    def chunk(self, chunk_id: str) -> tuple[str, int]:
        """(pack id, stored length) of a chunk."""


@dataclass
class VersionDecision:
    version_id: str
    kept: bool
    tier: str | None
    reasons: list[str]
    expires_on: datetime | None = None


@dataclass
class Plan:
    now: datetime
    versions: dict[str, VersionDecision] = field(default_factory=dict)
    pack_tiers: dict[str, str] = field(default_factory=dict)  # marked packs -> tier
    live_bytes: dict[str, int] = field(default_factory=dict)
    moves: list[tuple[str, str, str]] = field(default_factory=list)  # pack, from, to
    deletions: list[str] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)  # garbage kept for now, why
    repacks: list[str] = field(default_factory=list)
    freed_bytes: dict[str, int] = field(default_factory=lambda: {HOT: 0, WARM: 0, COLD: 0})
    early_charges: Decimal = Decimal(0)
    live_chunks: set[str] | None = None  # chunks kept versions reach, when asked for

    @property
    def expired(self) -> list[str]:
        return [v.version_id for v in self.versions.values() if not v.kept]

    def summary(self) -> dict[str, object]:
        return {
            "versions_kept": sum(1 for v in self.versions.values() if v.kept),
            "versions_expired": len(self.expired),
            "moves": len(self.moves),
            "deletions": len(self.deletions),
            "repacks": len(self.repacks),
            "deferred": len(self.deferred),
            "freed_bytes": dict(self.freed_bytes),
            "early_deletion_charges": str(self.early_charges.quantize(Decimal("0.01"))),
        }


def policy_for(branch: str, policies: Sequence[Policy]) -> Policy | None:
    return next((policy for policy in policies if policy.matches(branch)), None)


def decide_version(
    version: VersionFacts,
    *,
    policies: Sequence[Policy],
    branch_last_commit: Mapping[str, datetime],
    now: datetime,
) -> VersionDecision:
    """Kept or expired, and the tier a kept version needs, with the reasons.

    A branch with no matching policy keeps its versions hot: when nobody decided,
    keeping is the safe default. A version's tier follows the policies of all its
    branches (the hottest wins), whether or not they still keep it.
    """
    reasons: list[str] = list(version.protections)
    kept = bool(version.protections)
    tier: str | None = None
    expires_on: datetime | None = None
    for branch in sorted(version.branches):
        policy = policy_for(branch, policies)
        if policy is None:
            kept = True
            tier = HOT
            reasons.append(f"on {branch}, which no policy covers")
            continue
        branch_tier = _policy_tier(policy, version.last_access, now)
        tier = branch_tier if tier is None else hotter(tier, branch_tier)
        if policy.keep_forever or policy.expire_after_days is None:
            kept = True
            reasons.append(f"{branch} is kept forever" if policy.keep_forever else f"{branch} has no expiry")
            continue
        last = branch_last_commit.get(branch, now)
        ends = last + timedelta(days=policy.expire_after_days)
        if ends > now:
            kept = True
            reasons.append(f"{branch} last committed {(now - last).days} days ago")
            expires_on = ends if expires_on is None else max(expires_on, ends)
    if not kept:
        return VersionDecision(version.id, False, None, reasons or ["expired by policy"])
    if tier is None:
        tier = HOT
    if version.stay_readable:
        tier = hotter(tier, WARM)
    protected_for_good = bool(version.protections) or any(
        (policy := policy_for(b, policies)) is None or policy.keep_forever or policy.expire_after_days is None
        for b in version.branches
    )
    return VersionDecision(version.id, True, tier, reasons, None if protected_for_good else expires_on)


def _policy_tier(policy: Policy, last_access: datetime, now: datetime) -> str:
    idle = (now - last_access).days
    if policy.cold_after_days is not None and idle >= policy.cold_after_days:
        return COLD
    if policy.warm_after_days is not None and idle >= policy.warm_after_days:
        return WARM
    return HOT


def plan(
    *,
    versions: Iterable[VersionFacts],
    packs: Iterable[PackFacts],
    graph: ObjectGraph,
    policies: Sequence[Policy],
    branch_last_commit: Mapping[str, datetime],
    now: datetime,
    grace: timedelta = timedelta(days=1),
    repack_below: float = 0.5,
    prices: Prices | None = None,
    collect_live_chunks: bool = False,
) -> Plan:
    """Decide every version, mark every pack, and list what to move, delete, repack."""
    prices = prices or Prices()
    result = Plan(now=now)
    roots = _decide_versions(
        result, versions, policies=policies, branch_last_commit=branch_last_commit, now=now
    )
    live_chunks = _mark(result, roots, graph)
    for pack in packs:
        _sweep_pack(result, pack, now=now, grace=grace, repack_below=repack_below, prices=prices)
    if collect_live_chunks:
        result.live_chunks = live_chunks
    return result


def _decide_versions(
    result: Plan,
    versions: Iterable[VersionFacts],
    *,
    policies: Sequence[Policy],
    branch_last_commit: Mapping[str, datetime],
    now: datetime,
) -> dict[str, list[str]]:
    """Decide each version into `result`; return the root trees of the kept
    ones, by the tier they need."""
    roots: dict[str, list[str]] = {HOT: [], WARM: [], COLD: []}
    for version in versions:
        decision = decide_version(version, policies=policies, branch_last_commit=branch_last_commit, now=now)
        result.versions[version.id] = decision
        if decision.kept and decision.tier is not None:
            roots[decision.tier].append(version.root_tree)
    return roots


def _mark(result: Plan, roots: dict[str, list[str]], graph: ObjectGraph) -> set[str]:
    """Mark, hottest first, so each tree, file and chunk is walked at most once per
    tier and ends up with the hottest tier any kept version needs. Fills the
    plan's pack tiers and live bytes; returns the live chunks."""
    live_chunks: set[str] = set()
    tree_tier: dict[str, str] = {}
    file_tier: dict[str, str] = {}
    for tier in (HOT, WARM, COLD):
        stack = [root for root in roots[tier] if root not in tree_tier]
        while stack:
            tree_id = stack.pop()
            if tree_id in tree_tier:
                continue
            tree_tier[tree_id] = tier
            subtrees, files = graph.tree(tree_id)
            stack.extend(subtree for subtree in subtrees if subtree not in tree_tier)
            for digest in files:
                if digest in file_tier:
                    continue
                file_tier[digest] = tier
                _mark_chunks(result, graph.chunks(digest), graph, tier, live_chunks)
    return live_chunks


def _mark_chunks(
    result: Plan, chunk_ids: Iterable[str], graph: ObjectGraph, tier: str, live_chunks: set[str]
) -> None:
    """Mark a file's chunks' packs with `tier` (unless they need a hotter one) and
    count their live bytes."""
    for chunk_id in chunk_ids:
        pack_id, length = graph.chunk(chunk_id)
        current = result.pack_tiers.get(pack_id)
        result.pack_tiers[pack_id] = tier if current is None else hotter(current, tier)
        if chunk_id not in live_chunks:
            # Once per chunk, however many files share it: the live
            # bytes are weighed against the pack's payload below.
            live_chunks.add(chunk_id)
            result.live_bytes[pack_id] = result.live_bytes.get(pack_id, 0) + length


def _sweep_pack(
    result: Plan, pack: PackFacts, *, now: datetime, grace: timedelta, repack_below: float, prices: Prices
) -> None:
    """What becomes of one pack: deleted or deferred when nothing marked it, else
    repacked when mostly dead and moved when in the wrong tier."""
    needed = result.pack_tiers.get(pack.id)
    days_in_tier = (now - pack.tier_since).days
    if needed is None:
        if pack.leased:
            result.deferred.append((pack.id, "leased by an upload in flight"))
        elif now - pack.created < grace:
            result.deferred.append((pack.id, "younger than the grace period"))
        else:
            result.deletions.append(pack.id)
            result.freed_bytes[pack.tier] += pack.size
            result.early_charges += early_deletion_charge(pack.size, pack.tier, days_in_tier, prices)
        return
    if _mostly_dead(pack, result.live_bytes.get(pack.id, 0), repack_below):
        result.repacks.append(pack.id)
    if needed != pack.tier:
        if _RANK[needed] > _RANK[pack.tier] and days_in_tier < MINIMUM_DAYS[pack.tier] and pack.tier != HOT:
            # Moving colder before the minimum duration costs more than it saves.
            result.deferred.append((pack.id, f"in {pack.tier} for {days_in_tier} days only"))
            return
        result.moves.append((pack.id, pack.tier, needed))
        result.early_charges += early_deletion_charge(pack.size, pack.tier, days_in_tier, prices)


def _mostly_dead(pack: PackFacts, live_bytes: int, repack_below: float) -> bool:
    """Whether repacking a marked pack is worth it: it holds dead chunk bytes, and
    its live bytes are under `repack_below` of its chunk bytes.

    Weighed against the payload, not the pack's size: a small pack's index and
    footer can outweigh its chunks, and a pack whose chunks are all live copies
    into a pack with the same index — the same pack, same name — freeing nothing.
    """
    payload = pack.size if pack.payload is None else pack.payload
    dead_bytes = payload - live_bytes
    return dead_bytes > 0 and live_bytes < repack_below * payload
