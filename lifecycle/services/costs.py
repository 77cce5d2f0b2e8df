"""The cost report: what the store holds and costs per dataset, branch and tier,
what dedup and compression save, what the current policies will make of it in 30
and 90 days, and each version's retention status.

All arithmetic is `lifecycle.domain.costs` (Decimal, to the cent); which packs each version
reaches and what the policies decide come from the retention planner, so the cost
page and the retention runs never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from catalog import permissions
from catalog.domain.formatting import about
from catalog.models import Branch, Version
from catalog.store import get_backend
from lifecycle.domain import retention as planner
from lifecycle.domain.costs import HOT, WARM, MonthlyCost, Prices, cents, monthly_cost
from lifecycle.services.retention import (
    DatabaseGraph,
    Facts,
    policies_current,
    prices_from_settings,
    retention_facts,
)
from strata_store.backends import Backend

TIERS = (HOT, WARM, planner.COLD)
PROJECTION_DAYS = (30, 90)


@dataclass
class Usage:
    """Bytes and dollars of one slice of the store (a dataset, a branch, a tier)."""

    name: str
    logical_bytes: int = 0
    stored_bytes: int = 0
    bytes_by_tier: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    monthly: Decimal = Decimal(0)

    @property
    def saved_bytes(self) -> int:
        return max(self.logical_bytes - self.stored_bytes, 0)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "logical_bytes": self.logical_bytes,
            "stored_bytes": self.stored_bytes,
            "saved_bytes": self.saved_bytes,
            "bytes_by_tier": self.bytes_by_tier,
            "monthly_dollars": str(cents(self.monthly)),
        }


@dataclass
class VersionStatus:
    version_id: str
    label: str
    tier: str  # the coldest tier its data sits in: what reading it needs
    planned_tier: str | None
    protected_because: list[str]
    kept_because: list[str]
    expires_on: datetime | None
    restorable_in: str  # "" when readable now

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version_id,
            "label": self.label,
            "tier": self.tier,
            "planned_tier": self.planned_tier,
            "protected_because": self.protected_because,
            "kept_because": self.kept_because,
            "expires_on": self.expires_on.date().isoformat() if self.expires_on else None,
            "restorable_in": self.restorable_in,
        }


@dataclass
class CostReport:
    now: datetime
    prices: dict[str, Decimal]
    tiers: MonthlyCost
    minimum_size_dollars: Decimal
    minimum_duration_dollars: Decimal  # what the moves and deletions due now would bill
    datasets: list[Usage]
    branches: list[Usage]
    projections: dict[int, Decimal]  # days ahead -> $/month then, unrounded
    timeline: list[tuple[datetime, Decimal]]
    versions: list[VersionStatus]
    logical_bytes: int
    stored_bytes: int

    @property
    def total(self) -> Decimal:
        return self.tiers.total

    @property
    def exact_total(self) -> Decimal:
        return self.tiers.exact_total

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of": self.now.isoformat(),
            "prices_per_tb_month": {tier: str(price) for tier, price in self.prices.items()},
            "logical_bytes": self.logical_bytes,
            "stored_bytes": self.stored_bytes,
            "saved_bytes": max(self.logical_bytes - self.stored_bytes, 0),
            "tiers": {
                tier: {
                    "stored_bytes": self.tiers.stored_bytes[tier],
                    "billed_bytes": self.tiers.billed_bytes[tier],
                    "monthly_dollars": str(cents(self.tiers.dollars[tier])),
                }
                for tier in TIERS
            },
            "monthly_dollars": str(self.total),
            "minimum_size_dollars": str(cents(self.minimum_size_dollars)),
            "minimum_duration_dollars": str(cents(self.minimum_duration_dollars)),
            "projections": {f"{days}_days": str(cents(amount)) for days, amount in self.projections.items()},
            "timeline": [
                {"date": when.date().isoformat(), "monthly_dollars": str(cents(amount))}
                for when, amount in self.timeline
            ],
            "datasets": [usage.as_dict() for usage in self.datasets],
            "branches": [usage.as_dict() for usage in self.branches],
            "versions": [status.as_dict() for status in self.versions],
        }


def _version_packs(graph: DatabaseGraph, root: str, memo: dict[str, frozenset[str]]) -> frozenset[str]:
    """The packs a tree reaches, memoised per tree (shared subtrees walked once)."""
    cached = memo.get(root)
    if cached is not None:
        return cached
    packs: set[str] = set()
    subtrees, files = graph.tree(root)
    for subtree in subtrees:
        packs |= _version_packs(graph, subtree, memo)
    for digest in files:
        for chunk_id in graph.chunks(digest):
            packs.add(graph.chunk(chunk_id)[0])
    result = frozenset(packs)
    memo[root] = result
    return result


def _cost_of(packs: Iterable[tuple[int, str]]) -> MonthlyCost:
    return monthly_cost(packs, prices_from_settings())


def _restore_words() -> str:
    return about(settings.STRATA_LOCAL_RESTORE_SECONDS)


@dataclass
class _Reach:
    """Which packs each live version reaches, and what those packs are."""

    packs: dict[str, planner.PackFacts]  # pack id -> its facts
    packs_of: dict[str, frozenset[str]]  # version id -> the packs it reaches

    def usage(self, name: str, version_ids: Iterable[str], logical: int) -> Usage:
        """The bytes and dollars of the packs any of `version_ids` reaches, each
        pack counted once."""
        reached: set[str] = set()
        for version_id in version_ids:
            reached |= self.packs_of.get(version_id, frozenset())
        result = Usage(name=name, logical_bytes=logical)
        for pack_id in reached:
            pack = self.packs[pack_id]
            result.stored_bytes += pack.size
            result.bytes_by_tier[pack.tier] += pack.size
        result.monthly = sum(
            _cost_of((self.packs[p].size, self.packs[p].tier) for p in reached).dollars.values(), Decimal(0)
        )
        return result


class _ColdReads:
    """Whether each cold pack is readable now, asking the store once per pack and
    opening it only when a cold pack is asked about."""

    def __init__(self) -> None:
        self._backend: Backend | None = None
        self._readable: dict[str, bool] = {}

    def readable(self, pack_id: str) -> bool:
        if pack_id not in self._readable:
            if self._backend is None:
                self._backend = get_backend()
            self._readable[pack_id] = self._backend.restore_state(pack_id).readable
        return self._readable[pack_id]


def _plan_now(
    facts: Facts, graph: DatabaseGraph, policies: list[planner.Policy], prices: Prices, now: datetime
) -> planner.Plan:
    """What the policies decide now, with the grace and repack threshold a run uses."""
    return planner.plan(
        versions=facts.versions,
        packs=facts.packs,
        graph=graph,
        policies=policies,
        branch_last_commit=facts.branch_last_commit,
        now=now,
        grace=timedelta(hours=settings.STRATA_RETENTION_GRACE_HOURS),
        repack_below=settings.STRATA_RETENTION_REPACK_BELOW,
        prices=prices,
    )


def _visible_names(user: permissions.User) -> set[str] | None:
    """The datasets `user` may read; None, for no user, means all of them."""
    if user is None:
        return None
    return set(permissions.visible_datasets(user).values_list("name", flat=True))


def _live_versions() -> dict[str, tuple[str, str, int, str, str]]:
    """Each live version's id, root tree, logical bytes, dataset name and semver,
    by id."""
    return {
        row[0]: row
        for row in Version.objects.filter(expired__isnull=True).values_list(
            "id", "tree_id", "logical_bytes", "dataset__name", "semver"
        )
    }


def _dataset_usage(
    reach: _Reach, version_rows: dict[str, tuple[str, str, int, str, str]], visible: set[str] | None
) -> list[Usage]:
    """Each visible dataset's usage, by name."""
    datasets: dict[str, list[str]] = {}
    for version_id, row in version_rows.items():
        datasets.setdefault(row[3], []).append(version_id)
    return [
        reach.usage(name, ids, sum(version_rows[v][2] for v in ids))
        for name, ids in sorted(datasets.items())
        if visible is None or name in visible
    ]


def _branch_usage(reach: _Reach, facts: Facts, visible: set[str] | None) -> list[Usage]:
    """Each visible branch's usage: every version its history holds; the logical
    bytes of its head."""
    history = {facts_version.id: facts_version.branches for facts_version in facts.versions}
    branch_usage = []
    for dataset_name, branch_name, head_logical in Branch.objects.values_list(
        "dataset__name", "name", "head__logical_bytes"
    ).order_by("dataset__name", "name"):
        if visible is not None and dataset_name not in visible:
            continue
        qualified = f"{dataset_name}:{branch_name}"
        ids = [version_id for version_id, branches in history.items() if qualified in branches]
        branch_usage.append(reach.usage(f"{dataset_name}@{branch_name}", ids, head_logical or 0))
    return branch_usage


def _projections(
    facts: Facts, graph: DatabaseGraph, policies: list[planner.Policy], prices: Prices, now: datetime
) -> dict[int, Decimal]:
    """The monthly bill in each of PROJECTION_DAYS, once the policies have moved
    the packs as they will by then (no grace: the future is already past it)."""
    projections: dict[int, Decimal] = {}
    for days in PROJECTION_DAYS:
        later = planner.plan(
            versions=facts.versions,
            packs=facts.packs,
            graph=graph,
            policies=policies,
            branch_last_commit=facts.branch_last_commit,
            now=now + timedelta(days=days),
            grace=timedelta(0),
            prices=prices,
        )
        projections[days] = _cost_of(
            (pack.size, later.pack_tiers[pack.id]) for pack in facts.packs if pack.id in later.pack_tiers
        ).exact_total
    return projections


def _timeline(
    facts: Facts, now: datetime, tiers: MonthlyCost, projections: dict[int, Decimal]
) -> list[tuple[datetime, Decimal]]:
    """The past from the packs' creation dates, at the tiers they are in now; the
    future from the projections."""
    timeline: list[tuple[datetime, Decimal]] = []
    for months_back in (6, 5, 4, 3, 2, 1):
        when = now - timedelta(days=30 * months_back)
        timeline.append((when, _cost_of((p.size, p.tier) for p in facts.packs if p.created <= when).total))
    timeline.append((now, tiers.total))
    timeline.extend((now + timedelta(days=days), amount) for days, amount in projections.items())
    return timeline


def _restorable_in(reach: _Reach, packs: frozenset[str], cold_reads: _ColdReads) -> str:
    """How long until a version whose data is cold can be read; "" if it can now."""
    waits = [
        pack_id
        for pack_id in packs
        if reach.packs[pack_id].tier == planner.COLD and not cold_reads.readable(pack_id)
    ]
    return _restore_words() if waits else ""


def _version_statuses(
    reach: _Reach,
    facts: Facts,
    plan: planner.Plan,
    version_rows: dict[str, tuple[str, str, int, str, str]],
    visible: set[str] | None,
) -> list[VersionStatus]:
    """Each visible live version's tier now, what the plan makes of it and why,
    sorted by label."""
    cold_reads = _ColdReads()
    statuses: list[VersionStatus] = []
    for facts_version in facts.versions:
        row = version_rows.get(facts_version.id)
        if row is None or (visible is not None and row[3] not in visible):
            continue
        packs = reach.packs_of[facts_version.id]
        version_tiers = {reach.packs[p].tier for p in packs}
        tier = next((t for t in reversed(TIERS) if t in version_tiers), HOT)
        restorable_in = _restorable_in(reach, packs, cold_reads) if tier == planner.COLD else ""
        decision = plan.versions[facts_version.id]
        statuses.append(
            VersionStatus(
                version_id=facts_version.id,
                label=f"{row[3]}@{row[4]}",
                tier=tier,
                planned_tier=decision.tier,
                protected_because=list(facts_version.protections),
                kept_because=[r for r in decision.reasons if r not in facts_version.protections],
                expires_on=decision.expires_on,
                restorable_in=restorable_in,
            )
        )
    statuses.sort(key=lambda status: status.label)
    return statuses


def cost_report(*, user: permissions.User = None, now: datetime | None = None) -> CostReport:
    """Everything the cost page and `strata cost` show, as of `now`."""
    now = now or timezone.now()
    prices = prices_from_settings()
    facts = retention_facts(now=now)
    policies = policies_current()
    graph = DatabaseGraph()
    plan = _plan_now(facts, graph, policies, prices, now)
    tiers = _cost_of((pack.size, pack.tier) for pack in facts.packs)
    visible = _visible_names(user)
    memo: dict[str, frozenset[str]] = {}
    version_rows = _live_versions()
    reach = _Reach(
        packs={pack.id: pack for pack in facts.packs},
        packs_of={
            version_id: _version_packs(graph, row[1], memo) for version_id, row in version_rows.items()
        },
    )
    dataset_usage = _dataset_usage(reach, version_rows, visible)
    branch_usage = _branch_usage(reach, facts, visible)
    projections = _projections(facts, graph, policies, prices, now)
    return CostReport(
        now=now,
        prices={HOT: prices.hot, WARM: prices.warm, planner.COLD: prices.cold},
        tiers=tiers,
        minimum_size_dollars=tiers.minimum_size_dollars,
        minimum_duration_dollars=plan.early_charges,
        datasets=dataset_usage,
        branches=branch_usage,
        projections=projections,
        timeline=_timeline(facts, now, tiers, projections),
        versions=_version_statuses(reach, facts, plan, version_rows, visible),
        logical_bytes=sum(usage.logical_bytes for usage in dataset_usage),
        stored_bytes=sum(pack.size for pack in facts.packs),
    )


def timeline_svg(report: CostReport, *, width: int = 640, height: int = 200) -> str:
    """The monthly bill over time as a small server-side SVG line chart; the
    projected part dashed."""
    points = report.timeline
    if not points:
        return ""
    left, right, top, bottom = 56, 16, 16, 32
    highest = max((amount for _, amount in points), default=Decimal(0)) or Decimal(1)
    start, end = points[0][0], points[-1][0]
    span = (end - start).total_seconds() or 1.0

    def xy(when: datetime, amount: Decimal) -> tuple[float, float]:
        x = left + (width - left - right) * (when - start).total_seconds() / span
        y = top + (height - top - bottom) * (1 - float(amount / highest))
        return round(x, 1), round(y, 1)

    past = [xy(when, amount) for when, amount in points if when <= report.now]
    future = [xy(when, amount) for when, amount in points if when >= report.now]
    parts = [
        f'<svg class="cost-timeline" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Monthly storage cost over time" xmlns="http://www.w3.org/2000/svg">',
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}"/>',
        f'<text class="label" x="{left - 6}" y="{top + 4}" text-anchor="end">${cents(highest)}</text>',
        f'<text class="label" x="{left - 6}" y="{height - bottom}" text-anchor="end">$0</text>',
        '<polyline class="past" points="' + " ".join(f"{x},{y}" for x, y in past) + '"/>',
        '<polyline class="projected" points="' + " ".join(f"{x},{y}" for x, y in future) + '"/>',
    ]
    for when, amount in points:
        x, y = xy(when, amount)
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="3"><title>{when:%Y-%m-%d}: ${cents(amount)}/month</title></circle>'
        )
    for when, label, anchor in (
        (start, f"{start:%b %Y}", "start"),
        (report.now, "today", "middle"),
        (end, f"{end:%b %Y}", "end"),
    ):
        x, _ = xy(when, Decimal(0))
        parts.append(f'<text class="label" x="{x}" y="{height - 10}" text-anchor="{anchor}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["CostReport", "cost_report", "timeline_svg"]
