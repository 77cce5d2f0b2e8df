"""Retention, tiering and garbage collection against the catalog and the store.

`retention_facts` reads what the pure planner (`lifecycle.domain.retention`) needs from the
database; `retention_plan` records a run with its dry-run report; `retention_approve`
lets an approver release a large sweep; `retention_advance` applies the recorded
plan step by step (DESIGN.md, invariants 1, 2, 5 and 6):

- expiring: expired versions are marked (their history stays, their bytes go);
- moving: each pack is moved in the store first, then its row says so;
- repacking: live chunks of a mostly dead pack are copied into a new pack, which is
  stored and registered before the old pack's rows go, and its bytes last;
- sweeping: a dead pack's rows are deleted first, then its bytes — so no row ever
  points at missing bytes, and a crash leaves at most bytes nothing refers to.

Every action is idempotent, so a worker killed anywhere re-runs the same phase and
ends in the same state. Time comes in as `now`: tests pass a simulated clock.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog import failpoints, hooks, permissions
from catalog.errors import Forbidden, UserError
from catalog.models import AuditEvent, Branch, Chunk, FileManifest, Pack, Tag, UploadLease, Version
from catalog.services.collection import collecting
from catalog.store import batched, chunks_register, file_chunks, get_backend, trees_load
from lifecycle.domain import retention as planner
from lifecycle.domain.costs import Prices
from lifecycle.models import PackRestore, RetentionPolicy, RetentionRun
from strata_store.backends import Backend
from strata_store.errors import CorruptObject
from strata_store.packs import (
    ChunkLocation,
    FinishedPack,
    PackWriter,
    decode_chunk,
    footer_size,
    index_entry_size,
    pack_id_of,
    payload_size,
)

logger = logging.getLogger(__name__)
State = RetentionRun.State


def prices_from_settings() -> Prices:
    return Prices(
        hot=Decimal(str(settings.STRATA_PRICE_HOT)),
        warm=Decimal(str(settings.STRATA_PRICE_WARM)),
        cold=Decimal(str(settings.STRATA_PRICE_COLD)),
    )


def policies_current() -> list[planner.Policy]:
    """The admins' policies, in the order they apply."""
    return [
        planner.Policy(
            pattern=row.pattern,
            keep_forever=row.keep_forever,
            expire_after_days=row.expire_after_days,
            warm_after_days=row.warm_after_days,
            cold_after_days=row.cold_after_days,
        )
        for row in RetentionPolicy.objects.all()
    ]


class DatabaseGraph:
    """The object graph of `lifecycle.domain.retention.ObjectGraph`, read from the catalog
    with caches, so each tree and manifest is loaded once per plan."""

    def __init__(self) -> None:
        self._trees: dict[str, tuple[list[str], list[str]]] = {}
        self._chunks_of: dict[str, list[str]] = {}
        self._chunk: dict[str, tuple[str, int]] = {}

    def tree(self, tree_id: str) -> tuple[Sequence[str], Sequence[str]]:
        cached = self._trees.get(tree_id)
        if cached is None:
            entries = trees_load([tree_id])[tree_id]
            cached = (
                [entry.digest for entry in entries if entry.is_tree],
                [entry.digest for entry in entries if entry.is_file],
            )
            self._trees[tree_id] = cached
        return cached

    def chunks(self, digest: str) -> Sequence[str]:
        cached = self._chunks_of.get(digest)
        if cached is None:
            cached = file_chunks([digest])[digest]
            self._chunks_of[digest] = cached
            missing = [chunk_id for chunk_id in cached if chunk_id not in self._chunk]
            for batch in batched(missing):
                for chunk_id, pack_id, length in Chunk.objects.filter(id__in=batch).values_list(
                    "id", "pack_id", "stored_length"
                ):
                    self._chunk[chunk_id] = (pack_id, length)
        return cached

    def chunk(self, chunk_id: str) -> tuple[str, int]:
        try:
            return self._chunk[chunk_id]
        except KeyError:
            # A kept version names a chunk the index lacks: stop before deciding
            # anything, rather than treat its pack as garbage.
            raise UserError(f"chunk {chunk_id} is missing from the index; run `strata verify`.") from None


@dataclass
class Facts:
    versions: list[planner.VersionFacts]
    packs: list[planner.PackFacts]
    branch_last_commit: dict[str, datetime]
    labels: dict[str, str]  # version id -> "reviews@1.2.0"


def _qualified(dataset_name: str, branch: str) -> str:
    return f"{dataset_name}:{branch}"


def retention_facts(*, now: datetime) -> Facts:
    """What the planner needs: every live version with its branches and
    protections, every pack with its tier and lease, each branch's last commit."""
    rows = {
        row[0]: row
        for row in Version.objects.filter(expired__isnull=True).values_list(
            "id", "parent_id", "tree_id", "created", "last_accessed", "golden", "dataset__name", "semver"
        )
    }
    merge_parents = dict(
        Version.objects.filter(expired__isnull=True, merge_parent__isnull=False).values_list(
            "id", "merge_parent_id"
        )
    )
    experiments = hooks.branches_as_experiments()
    branches_of: dict[str, set[str]] = {version_id: set() for version_id in rows}
    branch_last_commit: dict[str, datetime] = {}
    for branch in Branch.objects.select_related("dataset").values_list(
        "dataset__name", "name", "head_id", "head__created"
    ):
        dataset_name, name, head_id, head_created = branch
        # A change request closed without merging leaves its branch to expire
        # as an experiment does, whatever its name.
        as_named = (
            f"exp/{name}" if (dataset_name, name) in experiments and not name.startswith("exp/") else name
        )
        qualified = _qualified(dataset_name, as_named)
        branch_last_commit[qualified] = head_created
        # A branch's history is every version it reaches through both parents
        # of each merge: what was merged in is kept as the branch keeps it.
        stack = [head_id]
        while stack:
            version_id = stack.pop()
            if version_id not in rows or qualified in branches_of[version_id]:
                continue
            branches_of[version_id].add(qualified)
            stack += [p for p in (rows[version_id][1], merge_parents.get(version_id)) if p]

    protections: dict[str, list[str]] = {version_id: [] for version_id in rows}
    readable: set[str] = set()
    for version_id, row in rows.items():
        if row[5]:
            protections[version_id].append("golden")
            readable.add(version_id)
    for version_id, name in Tag.objects.values_list("version_id", "name"):
        if version_id in protections:
            protections[version_id].append(f"tagged {name}")
    # Runs that consumed a version, models pinned to it, rollbacks targeting it:
    # the apps that know them say so through the catalog's hooks.
    for protection in hooks.protections_all():
        if protection.version_id in protections:
            protections[protection.version_id].append(protection.reason)
            if protection.stay_readable:
                readable.add(protection.version_id)

    versions = [
        planner.VersionFacts(
            id=version_id,
            root_tree=row[2],
            branches=frozenset(branches_of[version_id]),
            last_access=max(row[3], row[4]) if row[4] else row[3],
            protections=tuple(dict.fromkeys(protections[version_id])),
            stay_readable=version_id in readable,
        )
        for version_id, row in rows.items()
    ]
    leased = set(
        UploadLease.objects.filter(upload__committed__isnull=True, upload__expires__gt=now).values_list(
            "pack_id", flat=True
        )
    )
    packs = [
        planner.PackFacts(
            id=pack_id,
            size=size,
            tier=tier,
            created=created,
            tier_since=tier_since,
            leased=pack_id in leased,
            payload=payload_size(size, chunk_count),
        )
        for pack_id, size, tier, created, tier_since, chunk_count in Pack.objects.values_list(
            "id", "size", "tier", "created", "tier_since", "chunk_count"
        )
    ]
    labels = {version_id: f"{row[6]}@{row[7]}" for version_id, row in rows.items()}
    return Facts(versions, packs, branch_last_commit, labels)


def retention_preview(*, now: datetime, collect_live_chunks: bool = False) -> tuple[planner.Plan, Facts]:
    """The plan as it stands at `now`, without recording anything."""
    facts = retention_facts(now=now)
    plan = planner.plan(
        versions=facts.versions,
        packs=facts.packs,
        graph=DatabaseGraph(),
        policies=policies_current(),
        branch_last_commit=facts.branch_last_commit,
        now=now,
        grace=timedelta(hours=settings.STRATA_RETENTION_GRACE_HOURS),
        repack_below=settings.STRATA_RETENTION_REPACK_BELOW,
        prices=prices_from_settings(),
        collect_live_chunks=collect_live_chunks,
    )
    return plan, facts


def _audit(run: RetentionRun, action: str, actor: str, object_type: str, object_id: str, **kwargs) -> None:
    AuditEvent.objects.create(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        created=timezone.now(),
        **kwargs,
    )


def retention_plan(
    *, user: permissions.User = None, now: datetime | None = None, trigger: str = "manual"
) -> RetentionRun:
    """Plan a run and record it with its dry-run report. A run whose sweep frees
    more than STRATA_RETENTION_APPROVAL_BYTES waits for an approver; a smaller one
    is approved at once. `user` None is the scheduler or the local command line."""
    if user is not None:
        permissions.require_role(user, permissions.ADMIN, "plan retention runs")
    now = now or timezone.now()
    plan, facts = retention_preview(now=now)
    sizes = {pack.id: pack.size for pack in facts.packs}
    tiers = {pack.id: pack.tier for pack in facts.packs}
    sweep_bytes = sum(sizes[pack_id] for pack_id in plan.deletions) + sum(sizes[p] for p in plan.repacks)
    report = plan.summary()
    report["expiring"] = [
        {"version": v.version_id, "label": facts.labels[v.version_id], "why": "; ".join(v.reasons)}
        for v in plan.versions.values()
        if not v.kept
    ]
    report["deleting"] = [{"pack": p, "tier": tiers[p], "bytes": sizes[p]} for p in plan.deletions]
    report["repacking"] = [
        {"pack": p, "bytes": sizes[p], "live_bytes": plan.live_bytes.get(p, 0)} for p in plan.repacks
    ]
    report["moving"] = [{"pack": p, "from": a, "to": b, "bytes": sizes[p]} for p, a, b in plan.moves]
    report["deferred"] = [{"pack": p, "why": why} for p, why in plan.deferred]
    report["sweep_bytes"] = sweep_bytes
    actions = {
        "expire": plan.expired,
        "move": [list(move) for move in plan.moves],
        "repack": plan.repacks,
        "delete": plan.deletions,
    }
    needs_approval = sweep_bytes > settings.STRATA_RETENTION_APPROVAL_BYTES
    actor = user.get_username() if user is not None else trigger
    with transaction.atomic():
        # A newer plan replaces any still waiting for approval: an approver must
        # never release a plan made from facts that have since changed.
        superseded = list(RetentionRun.objects.filter(state=State.AWAITING).values_list("pk", flat=True))
        RetentionRun.objects.filter(pk__in=superseded).update(
            state=State.CANCELLED,
            state_changed=timezone.now(),
            finished=timezone.now(),
            error="superseded by a newer plan",
        )
        for old_pk in superseded:
            AuditEvent.objects.create(
                actor=actor,
                action="retention.supersede",
                object_type="retention_run",
                object_id=str(old_pk),
                before={"state": State.AWAITING},
                after={"state": State.CANCELLED},
            )
        run = RetentionRun.objects.create(
            as_of=now,
            trigger=trigger,
            requested_by=user if user is not None and user.is_authenticated else None,
            state=State.AWAITING if needs_approval else State.APPROVED,
            report=report,
            actions=actions,
            sweep_bytes=sweep_bytes,
        )
        _audit(
            run,
            "retention.plan",
            actor,
            "retention_run",
            str(run.pk),
            after={"state": run.state, **plan.summary()},
        )
    return run


def retention_approve(*, user: permissions.User, run: RetentionRun) -> RetentionRun:
    """An approver releases a large sweep."""
    permissions.require_role(user, permissions.APPROVER, "approve retention runs")
    with transaction.atomic():
        moved = RetentionRun.objects.filter(pk=run.pk, state=State.AWAITING).update(
            state=State.APPROVED,
            state_changed=timezone.now(),
            approved_by=user,
            approver_name=user.get_username() if user is not None else "",
        )
        if not moved:
            raise UserError(f"retention run {run.pk} is not waiting for approval.")
        _audit(
            run,
            "retention.approve",
            user.get_username() if user is not None else "local",
            "retention_run",
            str(run.pk),
            before={"state": State.AWAITING},
            after={"state": State.APPROVED},
        )
    run.refresh_from_db()
    return run


def retention_cancel(*, user: permissions.User, run: RetentionRun) -> RetentionRun:
    """Drop a run that has not started."""
    if not (permissions.has_role(user, permissions.APPROVER) or permissions.is_admin(user)):
        raise Forbidden("only approvers and admins can cancel retention runs.")
    with transaction.atomic():
        moved = RetentionRun.objects.filter(pk=run.pk, state__in=[State.AWAITING, State.APPROVED]).update(
            state=State.CANCELLED, state_changed=timezone.now(), finished=timezone.now()
        )
        if not moved:
            raise UserError(f"retention run {run.pk} has started or finished; it cannot be cancelled.")
        _audit(
            run, "retention.cancel", user.get_username() if user else "local", "retention_run", str(run.pk)
        )
    run.refresh_from_db()
    return run


PHASES = ("expiring", "moving", "repacking", "sweeping")


def retention_advance(*, run_id: int) -> RetentionRun:
    """Apply an approved run's recorded plan to the end. Safe to call again at any
    time: a phase interrupted is re-applied from its start (each action is
    idempotent), a finished one is not repeated."""
    with transaction.atomic():
        claimed = RetentionRun.objects.filter(pk=run_id, state=State.APPROVED).update(
            state=State.APPLYING, phase=PHASES[0], state_changed=timezone.now()
        )
        if claimed:
            AuditEvent.objects.create(
                actor="worker",
                action="retention.applying",
                object_type="retention_run",
                object_id=str(run_id),
                before={"state": State.APPROVED},
                after={"state": State.APPLYING},
            )
    run = RetentionRun.objects.get(pk=run_id)
    if run.state != State.APPLYING:
        return run
    try:
        for phase in PHASES[PHASES.index(run.phase or PHASES[0]) :]:
            RetentionRun.objects.filter(pk=run_id).update(phase=phase)
            failpoints.hit(f"retention.{phase}")
            _PHASE_ACTIONS[phase](run)
        with transaction.atomic():
            RetentionRun.objects.filter(pk=run_id, state=State.APPLYING).update(
                state=State.DONE, phase="", finished=timezone.now(), state_changed=timezone.now(), progress=""
            )
            AuditEvent.objects.create(
                actor="worker",
                action="retention.done",
                object_type="retention_run",
                object_id=str(run_id),
                before={"state": State.APPLYING},
                after={
                    "state": State.DONE,
                    **{k: run.report.get(k) for k in ("freed_bytes", "versions_expired")},
                },
            )
    except Exception as error:  # recorded on the row in words; the pages show it
        logger.exception("retention run %s failed", run_id)
        RetentionRun.objects.filter(pk=run_id).update(
            state=State.FAILED, error=str(error), finished=timezone.now(), state_changed=timezone.now()
        )
    run.refresh_from_db()
    return run


def _progress(run: RetentionRun, text: str) -> None:
    RetentionRun.objects.filter(pk=run.pk).update(progress=text)


def _expire(run: RetentionRun) -> None:
    """Mark expired versions. Metadata only: the sweep frees their bytes later in
    this run, and a version is marked before any of its packs can go."""
    version_ids = run.actions.get("expire", [])
    for batch in batched(version_ids):
        with transaction.atomic():
            for version in Version.objects.select_for_update().filter(id__in=batch, expired__isnull=True):
                Version.objects.filter(pk=version.pk).update(expired=run.as_of)
                AuditEvent.objects.create(
                    actor="worker",
                    action="version.expire",
                    dataset_id=version.dataset_id,
                    object_type="version",
                    object_id=version.id,
                    before={"expired": None},
                    after={"expired": run.as_of.isoformat(), "run": run.pk},
                )
    _progress(run, f"{len(version_ids)} versions expired")


def _move(run: RetentionRun) -> None:
    """Move packs between tiers: the store first, then the row (a crash between
    the two leaves the row behind the store; the re-run sets the same tier again)."""
    backend = get_backend()
    moves = run.actions.get("move", [])
    for index, (pack_id, _from_tier, to_tier) in enumerate(moves, 1):
        pack = Pack.objects.filter(pk=pack_id).first()
        if pack is None or pack.tier == to_tier:
            continue
        backend.set_tier(pack_id, to_tier)
        failpoints.hit("retention.moved-in-store")
        with transaction.atomic():
            Pack.objects.filter(pk=pack_id).update(tier=to_tier, tier_since=run.as_of)
            AuditEvent.objects.create(
                actor="worker",
                action="pack.tier",
                object_type="pack",
                object_id=pack_id,
                before={"tier": pack.tier},
                after={"tier": to_tier, "run": run.pk},
            )
        if index % 100 == 0:
            _progress(run, f"moved {index} of {len(moves)} packs")


def _live_chunks_of(pack_ids: Sequence[str], now: datetime) -> set[str]:
    plan, _ = retention_preview(now=now, collect_live_chunks=True)
    live = plan.live_chunks or set()
    result: set[str] = set()
    for batch in batched(list(pack_ids)):
        result.update(
            chunk_id
            for chunk_id in Chunk.objects.filter(pack_id__in=batch).values_list("id", flat=True)
            if chunk_id in live
        )
    return result


def _delete_unnamed_bytes(backend, pack_id: str, *, written: set[str] | frozenset[str] = frozenset()) -> bool:
    """Delete a pack's bytes, but only once no row names it and this run has not
    just written a pack of that name. Packs are named by their index, so a repack
    can write a pack with the very name of one it replaces, or of one being
    swept: those bytes are live. Returns whether the bytes were deleted."""
    if pack_id in written:
        return False
    if Pack.objects.filter(pk=pack_id).exists() or Chunk.objects.filter(pack_id=pack_id).exists():
        return False
    backend.delete_pack(pack_id)
    return True


def _verify_stored(backend, finished: FinishedPack) -> None:
    """Read a pack just stored back from the store: its size, its name (the hash
    of its index and footer) and every chunk's bytes, before any row names it."""
    pack_id = finished.pack_id
    if backend.pack_size(pack_id) != finished.size:
        raise CorruptObject("pack", pack_id, "stored with the wrong size")
    tail_length = len(finished.entries) * index_entry_size() + footer_size()
    if pack_id_of(backend.read_tail(pack_id, tail_length)) != pack_id:
        raise CorruptObject("pack", pack_id, "stored with the wrong index")
    payload_end = finished.size - tail_length
    payload = backend.read_range(pack_id, 0, payload_end)
    for entry in finished.entries:
        location = ChunkLocation(
            entry.chunk_id, pack_id, entry.offset, entry.stored_length, entry.raw_length, entry.codec
        )
        decode_chunk(location, payload[entry.offset : entry.offset + entry.stored_length])


def _repack(run: RetentionRun) -> None:
    """Copy the live chunks of mostly dead packs into new packs. Order: new pack
    stored and read back; then, in one transaction, its row, its chunks re-pointed
    and the old rows gone; then the old bytes, once no row names them. A crash
    before the transaction leaves a new pack nothing names; after it, old bytes
    nothing names — never a row without bytes.

    A pack is named by its index, so a copy of all of a pack's chunks is the pack
    itself, with the same name: the planner does not ask for that, and if asked
    the pack is left as it is. More generally, nothing this phase has written is
    ever deleted, rows or bytes."""
    planned = run.actions.get("repack", [])
    pack_ids = [pack_id for pack_id in planned if Pack.objects.filter(pk=pack_id).exists()]
    backend = get_backend()
    written: set[str] = set()
    for pack_id in planned:
        if pack_id not in pack_ids:
            _delete_unnamed_bytes(backend, pack_id)  # finished but for its bytes before a crash
    if not pack_ids:
        return
    # Reachability is decided again now, not taken from the plan: a push since
    # the plan may have started to use chunks of these packs.
    live = _live_chunks_of(pack_ids, run.as_of)
    for old_id in pack_ids:
        _repack_one(run, backend, old_id, live=live, written=written)


def _repack_one(
    run: RetentionRun, backend: Backend, old_id: str, *, live: set[str], written: set[str]
) -> None:
    """Repack one pack: its live chunks copied into a new pack (none, when all are
    dead), the rows moved over, the old bytes deleted. `written` gathers the packs
    this run has stored."""
    old = Pack.objects.filter(pk=old_id).first()
    if old is None or old_id in written:
        return  # already the copy of another pack of this run: live as it is
    if not backend.restore_state(old_id).readable:
        # A cold pack is read only after a restore: ask for one, and leave the
        # pack as it is (whole and correct) for a later run to repack.
        backend.request_restore(old_id)
        _progress(run, f"pack {old_id[:12]} is being restored before it can be repacked")
        return
    locations = [
        ChunkLocation(c.id, c.pack_id, c.offset, c.stored_length, c.raw_length, c.codec)
        for c in Chunk.objects.filter(pack_id=old_id).order_by("offset")
    ]
    keep = [location for location in locations if location.chunk_id in live]
    finished = None
    if keep:
        finished = _copy_chunks(backend, old_id, keep)
        if finished.pack_id == old_id:
            # Every chunk of the pack is live: the copy is the pack itself.
            os.unlink(finished.path)
            _progress(run, f"pack {old_id[:12]} is all live; left as it is")
            return
        _store_copy(backend, finished, old, written)
    failpoints.hit("retention.repack-stored")
    _repack_rows(run, old, finished, chunks_before=len(locations), chunks_kept=len(keep), written=written)
    _delete_unnamed_bytes(backend, old_id, written=written)


def _copy_chunks(backend: Backend, old_id: str, keep: list[ChunkLocation]) -> FinishedPack:
    """A new pack, in the spool, of the chunks `keep` of pack `old_id`, each
    verified before it is copied."""
    writer = PackWriter(backend.spool_dir(), settings.STRATA_PACK_SIZE)
    try:
        for location in keep:
            payload = backend.read_range(old_id, location.offset, location.stored_length)
            decode_chunk(location, payload)  # verify before copying
            writer.add_encoded(location.chunk_id, location.raw_length, payload, location.codec)
    except BaseException:
        writer.abort()
        raise
    finished = writer.finish()
    assert finished is not None
    return finished


def _store_copy(backend: Backend, finished: FinishedPack, old: Pack, written: set[str]) -> None:
    """Store a new pack, read it back, and put it in the old pack's tier."""
    # Stored under its own name, which no row may use yet; put_pack keeps
    # bytes already stored under that name (same name, same bytes).
    backend.put_pack(finished.pack_id, finished.path)
    _verify_stored(backend, finished)
    written.add(finished.pack_id)
    if old.tier != Pack.Tier.HOT:
        backend.set_tier(finished.pack_id, old.tier)


def _repack_rows(
    run: RetentionRun,
    old: Pack,
    finished: FinishedPack | None,
    *,
    chunks_before: int,
    chunks_kept: int,
    written: set[str],
) -> None:
    """In one transaction: the new pack's row and its chunks re-pointed, the old
    pack's rows gone, and the audit event."""
    old_id = old.id
    with transaction.atomic():
        if finished is not None:
            Pack.objects.get_or_create(
                id=finished.pack_id,
                defaults={
                    "size": finished.size,
                    "chunk_count": len(finished.entries),
                    "created": run.as_of,
                    "tier": old.tier,
                    "tier_since": old.tier_since,
                },
            )
            moved = [entry.chunk_id for entry in finished.entries]
            for batch in batched(moved):
                Chunk.objects.filter(id__in=batch).delete()
            chunks_register(finished.pack_id, finished.entries)
        # Only dead chunks still point at the old pack now, and the old pack is
        # none of the packs just written (checked above): its rows can go.
        if old_id not in written:
            Chunk.objects.filter(pack_id=old_id).delete()
            Pack.objects.filter(pk=old_id).delete()
        AuditEvent.objects.create(
            actor="worker",
            action="pack.repack",
            object_type="pack",
            object_id=old_id,
            before={"size": old.size, "chunks": chunks_before},
            after={"pack": finished.pack_id if finished else None, "chunks": chunks_kept, "run": run.pk},
        )


def _sweep(run: RetentionRun) -> None:
    """Delete dead packs: rows first, then bytes. Each pack is checked again
    inside the transaction — a lease taken or a chunk reached since the plan
    keeps it."""
    deletions = run.actions.get("delete", [])
    backend = get_backend()
    still_live: set[str] | None = None
    for index, pack_id in enumerate(deletions, 1):
        with transaction.atomic():
            pack = Pack.objects.select_for_update().filter(pk=pack_id).first()
            if pack is not None:
                leased = UploadLease.objects.filter(
                    Q(pack_id=pack_id) & Q(upload__committed__isnull=True) & Q(upload__expires__gt=run.as_of)
                ).exists()
                if still_live is None:
                    still_live = _live_chunks_of(deletions, run.as_of)
                chunk_ids = Chunk.objects.filter(pack_id=pack_id).values_list("id", flat=True)
                reached = any(chunk_id in still_live for chunk_id in chunk_ids)
                if leased or reached:
                    continue
                UploadLease.objects.filter(pack_id=pack_id).delete()  # of expired or committed uploads
                Chunk.objects.filter(pack_id=pack_id).delete()
                Pack.objects.filter(pk=pack_id).delete()
                AuditEvent.objects.create(
                    actor="worker",
                    action="pack.delete",
                    object_type="pack",
                    object_id=pack_id,
                    before={"tier": pack.tier, "size": pack.size},
                    after={"run": run.pk},
                )
        failpoints.hit("retention.swept-row")
        _delete_unnamed_bytes(backend, pack_id)
        if index % 100 == 0:
            _progress(run, f"deleted {index} of {len(deletions)} packs")


def _drop_dangling_manifests(run: RetentionRun) -> int:
    """Delete the manifests of files whose chunks are gone from the index.

    A push trusts a file whose manifest exists (``present_digests``) and does not
    store it again: a manifest left behind by the sweep would let a new version
    point at missing bytes. Checked against the index as it is, so running it again
    after a crash finds what is left.
    """
    dropped = 0
    last = ""
    while True:
        rows = list(
            FileManifest.objects.filter(digest__gt=last)
            .order_by("digest")
            .values_list("digest", "chunk_ids")[:2000]
        )
        if not rows:
            break
        last = rows[-1][0]
        chunks_of = {digest: FileManifest(chunk_ids=raw).chunk_list() for digest, raw in rows}
        wanted = list({chunk_id for chunk_ids in chunks_of.values() for chunk_id in chunk_ids})
        present: set[str] = set()
        for batch in batched(wanted, 5000):
            present.update(Chunk.objects.filter(id__in=batch).values_list("id", flat=True))
        dangling = [digest for digest, chunk_ids in chunks_of.items() if not present.issuperset(chunk_ids)]
        if dangling:
            FileManifest.objects.filter(digest__in=dangling).delete()
            dropped += len(dangling)
    if dropped:
        _progress(run, f"{dropped} manifests of deleted files dropped")
    return dropped


def _sweep_and_tidy(run: RetentionRun) -> None:
    _sweep(run)
    if run.actions.get("delete") or run.actions.get("repack"):
        _drop_dangling_manifests(run)


def _collecting(action: Callable[[RetentionRun], object]) -> Callable[[RetentionRun], None]:
    """Run a phase that decides what is live and deletes the rest under the lock
    commits that reuse stored chunks take (catalog.services.collection)."""

    def run_collecting(run: RetentionRun) -> None:
        with collecting():
            action(run)

    return run_collecting


_PHASE_ACTIONS = {
    "expiring": _expire,
    "moving": _move,
    "repacking": _collecting(_repack),
    "sweeping": _collecting(_sweep_and_tidy),
}


def resume_stalled() -> list[int]:
    """Runs a worker left applying or approved (a lost message, a killed worker)."""
    return list(
        RetentionRun.objects.filter(state__in=[State.APPROVED, State.APPLYING]).values_list("pk", flat=True)
    )


def pack_restore_track(*, pack_id: str, state, requested_for: str = "") -> None:
    """Record a restore asked for, once per pack while it is under way."""
    if state.readable:
        return
    expected = timezone.now() + timedelta(seconds=state.ready_in_seconds) if state.ready_in_seconds else None
    if not PackRestore.objects.filter(pack_id=pack_id, state=PackRestore.State.RESTORING).exists():
        PackRestore.objects.create(pack_id=pack_id, requested_for=requested_for, expected_ready=expected)
        AuditEvent.objects.create(
            actor="strata",
            action="pack.restore",
            object_type="pack",
            object_id=pack_id,
            before={"readable": False},
            after={"for": requested_for},
        )


def restores_poll(*, now: datetime | None = None) -> int:
    """Look at every restore under way; mark the ones the store now serves."""
    now = now or timezone.now()
    backend = get_backend()
    finished = 0
    for restore in PackRestore.objects.filter(state=PackRestore.State.RESTORING):
        if backend.restore_state(restore.pack_id).readable:
            PackRestore.objects.filter(pk=restore.pk, state=PackRestore.State.RESTORING).update(
                state=PackRestore.State.READY, ready=now
            )
            finished += 1
    return finished


__all__ = [
    "DatabaseGraph",
    "Facts",
    "policies_current",
    "prices_from_settings",
    "pack_restore_track",
    "restores_poll",
    "resume_stalled",
    "retention_advance",
    "retention_approve",
    "retention_cancel",
    "retention_facts",
    "retention_plan",
    "retention_preview",
]
