"""Merging one branch of a dataset into another.

A merge is worked out in two steps. ``merge_plan`` finds the merge base and
merges the two heads' folders (``catalog.domain.merge``): cheap, it reads only
trees. ``merge_finish`` then merges the rows of every table changed on both
sides (``catalog.domain.table_merge``), reading the three versions of each
table from the store, verified, into a scratch folder; and, unless it is a dry
run or conflicts remain, stores the merged tables and commits one version with
two parents through the commit path (``catalog.services.commits``): the target
head first, then the source head, moved onto the target branch by
compare-and-swap. A merge either makes that one version or writes nothing.

The web and the API run a merge whose tables are small while the request waits,
and hand a larger one to a worker (``catalog.tasks.merge_run``), which records
its progress and outcome on a ``Merge`` row.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import yaml
from blake3 import blake3
from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from catalog import hooks, permissions
from catalog.domain import merge as treemerge
from catalog.domain.table_merge import merge_table_files
from catalog.domain.tabular import TableError, is_tabular, read_schema
from catalog.errors import ConflictError, IntegrityFailure, NotFound, UserError
from catalog.models import AuditEvent, Branch, CardDocument, Dataset, Merge, Version
from catalog.selectors import dataset_get
from catalog.selectors.changes import commit_bump, version_schema
from catalog.services.commits import CommitContent, CommitRequest, commit_on_head, version_commit
from catalog.services.jobs import job_enqueue
from catalog.services.validation import check_ref_name
from catalog.store import DatabaseChunkIndex, file_chunks, get_backend, read_pulled, trees_load
from strata_store import tree as treeformat
from strata_store.errors import MissingObject, StoreError
from strata_store.store import FileRecord, Ingest, locate_all

Progress = Callable[[float], None]

logger = logging.getLogger(__name__)

# Row conflicts listed in full per table; the count is always exact.
CONFLICT_DETAIL = 200


@dataclass(slots=True)
class MergeAsk:
    """What a merge was asked to do, checked."""

    dataset: Dataset
    source: str
    target: str
    strategy: str | None = None
    path_strategies: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    message: str = ""

    def as_options(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "path_strategies": self.path_strategies,
            "keys": self.keys,
            "message": self.message,
        }


@dataclass(slots=True)
class MergePlan:
    """The folders merged: what is left is the rows of tables changed on both sides."""

    ask: MergeAsk
    target_head: Version
    source_head: Version
    base: Version | None
    files: treemerge.TreeMerge
    warnings: list[str]
    up_to_date: bool = False

    @property
    def table_bytes(self) -> int:
        """How much the row merges must read: what decides where the merge runs."""
        total = 0
        for change in self.files.table_merges:
            total += sum(e.size for e in (change.base, change.target, change.source) if e is not None)
        return total


@dataclass(slots=True)
class MergeOutcome:
    """What a merge did, or would do in a dry run."""

    plan: MergePlan
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    conflict_count: int = 0
    bump: str | None = None
    bump_reasons: list[str] = field(default_factory=list)
    version: Version | None = None
    dry_run: bool = False

    @property
    def merged(self) -> bool:
        return self.version is not None

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        files = plan.files
        return {
            "dataset": plan.ask.dataset.name,
            "source": plan.ask.source,
            "target": plan.ask.target,
            "source_head": _version_brief(plan.source_head),
            "target_head": _version_brief(plan.target_head),
            "base": _version_brief(plan.base) if plan.base else None,
            "dry_run": self.dry_run,
            "up_to_date": plan.up_to_date,
            "merged": self.merged,
            "version": _version_brief(self.version) if self.version else None,
            "clean": self.conflict_count == 0,
            "conflict_count": self.conflict_count,
            "conflicts": self.conflicts,
            "files": [change.as_dict() for change in files.changes],
            "tables": self.tables,
            "bump": self.bump,
            "bump_reasons": self.bump_reasons,
            "warnings": plan.warnings,
            "options": plan.ask.as_options(),
        }


def _version_brief(version: Version | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "id": version.id,
        "semver": version.semver,
        "created": version.created.isoformat(),
        "rolled_back": version.rolled_back,
        "golden": version.golden,
    }


# -- asking ---------------------------------------------------------------------------


def merge_ask(
    *,
    user: permissions.User,
    dataset_name: str,
    source: str,
    into: str | None = None,
    strategy: str | None = None,
    path_strategies: dict[str, str] | None = None,
    keys: dict[str, str] | None = None,
    message: str = "",
    dry_run: bool = False,
    via: str = "",
) -> MergeAsk:
    """Check a merge's arguments. A dry run needs read access; a merge, write access
    and a target branch that takes direct changes (or `via` a change request)."""
    dataset = dataset_get(dataset_name, user)
    target = into or dataset.default_branch
    if not dry_run:
        permissions.require_write(user, dataset)
        hooks.commit_check(dataset, target, via)
    for name in (source, target):
        check_ref_name(name)
    if source == target:
        raise UserError(f"cannot merge branch {source} into itself: name another branch to merge.")
    for strategy_value in [strategy, *(path_strategies or {}).values()]:
        if strategy_value is not None and strategy_value not in treemerge.STRATEGIES:
            raise UserError(f"{strategy_value!r} is not a merge strategy: use source or target.")
    for path, column in (keys or {}).items():
        if not column or len(column) > 200:
            raise UserError(f"the key column for {path or 'every table'} must be a column name.")
    if len(message) > 10_000:
        raise UserError("the merge message is longer than 10,000 characters.")
    return MergeAsk(
        dataset=dataset,
        source=source,
        target=target,
        strategy=strategy,
        path_strategies=dict(path_strategies or {}),
        keys=dict(keys or {}),
        message=message,
    )


def parse_assignments(values: list[str], what: str) -> tuple[str | None, dict[str, str]]:
    """Command-line `--strategy`/`--key` values: a bare value applies to everything,
    ``PATH=VALUE`` to one path (or folder). Returns (for everything, by path)."""
    everything: str | None = None
    by_path: dict[str, str] = {}
    for value in values:
        path, sep, assigned = value.rpartition("=")
        if not sep:
            everything = value
        elif not path or not assigned:
            raise UserError(f"{value!r} is not a {what}: give VALUE or PATH=VALUE.")
        else:
            by_path[path.strip("/")] = assigned
    return everything, by_path


# -- the merge base -------------------------------------------------------------------


def _ancestry(head: Version) -> dict[str, tuple[str | None, str | None]]:
    """Every ancestor of `head` (itself included) with its two parents, in one query."""
    table = Version._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE ancestors(id) AS (
                SELECT id FROM {table} WHERE id = %s
                UNION
                SELECT v.id FROM {table} v
                JOIN {table} child ON child.parent_id = v.id OR child.merge_parent_id = v.id
                JOIN ancestors ON child.id = ancestors.id
            )
            SELECT v.id, v.parent_id, v.merge_parent_id FROM {table} v JOIN ancestors ON v.id = ancestors.id
            """,
            [head.id],
        )
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


def merge_base(target: Version, source: Version) -> tuple[Version | None, list[str]]:
    """The best common ancestor of two versions, and a warning when history is
    criss-crossed (several best ancestors: the newest is used)."""
    of_target = _ancestry(target)
    of_source = _ancestry(source)
    common = set(of_target) & set(of_source)
    if not common:
        return None, []
    # A common ancestor that is an ancestor of another common one is not best.
    below: set[str] = set()
    for version_id in common:
        stack = [p for p in of_target[version_id] if p]
        while stack:
            current = stack.pop()
            if current in below:
                continue
            below.add(current)
            stack.extend(p for p in of_target.get(current, (None, None)) if p)
    best = list(Version.objects.filter(id__in=common - below).order_by("-created", "id"))
    warnings = []
    if len(best) > 1:
        names = ", ".join(v.semver for v in best)
        warnings.append(
            f"the branches share {len(best)} latest common versions ({names}); merging from the newest, {best[0].semver}."
        )
    return best[0], warnings


# -- planning -------------------------------------------------------------------------


def _branch_head(dataset: Dataset, name: str) -> Version:
    row = Branch.objects.filter(dataset=dataset, name=name).select_related("head").first()
    if row is None:
        raise NotFound(f"dataset {dataset.name} has no branch {name}.")
    return row.head


def _cached_loader() -> treemerge.TreeLoader:
    cache: dict[str, list[treeformat.Entry]] = {}

    def load(tree_ids: Any) -> dict[str, list[treeformat.Entry]]:
        wanted = set(tree_ids)
        missing = [t for t in wanted if t not in cache]
        if missing:
            cache.update(trees_load(missing))
        return {t: cache[t] for t in wanted}

    return load


def _card_keys(*versions: Version) -> dict[str, str]:
    """Key columns declared in a card's metadata (`key_column`: one column for
    every table, or a mapping of path to column), the first version's first."""
    keys: dict[str, str] = {}
    card_ids = [v.card_id for v in versions if v.card_id]
    cards = CardDocument.objects.in_bulk(card_ids)
    for card_id in reversed(card_ids):
        # Kept as YAML text (cards.services.cards.card_document_store), checked when saved.
        try:
            metadata = yaml.safe_load((cards[card_id].content or {}).get("metadata_yaml") or "") or {}
        except yaml.YAMLError:
            continue
        declared = metadata.get("key_column") if isinstance(metadata, dict) else None
        if isinstance(declared, str) and declared:
            keys[""] = declared
        elif isinstance(declared, dict):
            keys.update({str(p).strip("/"): str(c) for p, c in declared.items() if c})
    return keys


def merge_plan(ask: MergeAsk) -> MergePlan:
    """Find the heads and their base, and merge their folders."""
    target_head = _branch_head(ask.dataset, ask.target)
    source_head = _branch_head(ask.dataset, ask.source)
    base, warnings = merge_base(target_head, source_head)
    if base is not None and base.rolled_back:
        warnings.append(
            f"the branches last met at {base.semver}, which was rolled back ({base.rolled_back_reason or 'no reason given'}):"
            " check that the source does not build on data that was withdrawn."
        )
    if source_head.rolled_back:
        warnings.append(f"the head of {ask.source}, {source_head.semver}, was rolled back.")
    keys = _card_keys(target_head, source_head) | ask.keys
    rules = treemerge.MergeRules(
        strategy=ask.strategy, path_strategies=ask.path_strategies, keys=keys, is_table=is_tabular
    )
    up_to_date = base is not None and base.id == source_head.id
    if up_to_date:
        files = treemerge.TreeMerge()
    else:
        files = treemerge.merge_trees(
            base.tree_id if base else None,
            target_head.tree_id,
            source_head.tree_id,
            load=_cached_loader(),
            rules=rules,
        )
    return MergePlan(ask, target_head, source_head, base, files, warnings, up_to_date=up_to_date)


# -- finishing ------------------------------------------------------------------------


def _write_entry(entry: treeformat.Entry, path: str, local: str) -> None:
    """Write a stored file to `local`, every chunk verified and the whole file checked."""
    chunk_ids = file_chunks([entry.digest])[entry.digest]
    try:
        locations = locate_all(DatabaseChunkIndex(), chunk_ids)
        hasher = blake3()
        size = 0
        with open(local, "wb") as handle:
            for piece in read_pulled([locations[c] for c in chunk_ids], workers=2):
                handle.write(piece)
                if len(chunk_ids) > 1:
                    hasher.update(piece)
                size += len(piece)
    except (MissingObject, StoreError) as error:
        raise IntegrityFailure(f"cannot read {path}: {error}") from None
    if size != entry.size or (len(chunk_ids) > 1 and hasher.hexdigest() != entry.digest):
        raise IntegrityFailure(f"cannot read {path}: its bytes do not match its digest.")


@dataclass(slots=True)
class _Merged:
    """Tables merged by row, waiting to be stored: path -> local file."""

    files: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)


def _merge_tables(plan: MergePlan, outcome: MergeOutcome, scratch: str, progress: Progress | None) -> _Merged:
    merged = _Merged()
    changes = plan.files.table_merges
    for index, change in enumerate(changes):
        assert change.target is not None and change.source is not None and change.key is not None
        folder = os.path.join(scratch, str(index))
        os.mkdir(folder)
        name = os.path.basename(change.path)
        local: dict[str, str | None] = {}
        for side, entry in (("base", change.base), ("target", change.target), ("source", change.source)):
            if entry is None:
                local[side] = None
                continue
            local[side] = os.path.join(folder, f"{side}-{name}")
            _write_entry(entry, change.path, local[side] or "")
        out = os.path.join(folder, f"merged-{name}")
        step = (lambda f, i=index: progress((i + f) / len(changes))) if progress else None
        try:
            result = merge_table_files(
                change.path,
                local["base"],
                local["target"] or "",
                local["source"] or "",
                out,
                key=change.key,
                strategy=_strategy(plan, change.path),
                progress=step,
            )
        except TableError as error:
            outcome.conflicts.append({"path": change.path, "kind": "table", "reason": str(error)})
            outcome.conflict_count += 1
            continue
        report = result.as_dict()
        outcome.tables[change.path] = report
        if not result.written:
            # Conflicts a strategy settled are counted in the table's report, not here.
            outcome.conflict_count += result.conflict_count - result.settled
            for conflict in report["conflicts"][:CONFLICT_DETAIL]:
                outcome.conflicts.append({"path": change.path, **conflict})
        else:
            merged.files[change.path] = out
            merged.kinds[change.path] = change.target.kind
    return merged


def _strategy(plan: MergePlan, path: str) -> str | None:
    rules = treemerge.MergeRules(strategy=plan.ask.strategy, path_strategies=plan.ask.path_strategies)
    return rules.strategy_for(path)


def merge_finish(
    plan: MergePlan,
    *,
    user: permissions.User,
    author: str = "",
    dry_run: bool = False,
    progress: Progress | None = None,
    via: str = "",
) -> MergeOutcome:
    """Merge the rows of the tables the plan left, then commit the merge (unless a
    dry run, or conflicts remain: then nothing is written). `via` names the
    service that merges for an approved request (see ``CommitRequest.via``)."""
    outcome = MergeOutcome(plan=plan, dry_run=dry_run)
    for change in plan.files.conflicts:
        outcome.conflicts.append({"path": change.path, "kind": "file", "reason": change.reason})
        outcome.conflict_count += 1
    if plan.up_to_date:
        return outcome
    with tempfile.TemporaryDirectory(prefix="strata-merge-", dir=_scratch_root()) as scratch:
        merged = _merge_tables(plan, outcome, scratch, progress)
        if outcome.conflict_count:
            return outcome
        return _store_and_commit(plan, outcome, merged, user=user, author=author, dry_run=dry_run, via=via)


def _scratch_root() -> str | None:
    root = getattr(settings, "STRATA_CACHE_DIR", None)
    if root:
        os.makedirs(root, exist_ok=True)
    return root


def _store_and_commit(
    plan: MergePlan,
    outcome: MergeOutcome,
    merged: _Merged,
    *,
    user: permissions.User,
    author: str,
    dry_run: bool,
    via: str,
) -> MergeOutcome:
    records: dict[str, FileRecord] = {}
    edits: dict[str, treeformat.Entry | None] = {}
    for change in plan.files.changes:
        if change.outcome == "source" or (change.outcome == "settled" and change.taken == treemerge.SOURCE):
            edits[change.path] = change.source
    ingest = (
        None if dry_run else Ingest(get_backend(), DatabaseChunkIndex(), pack_size=settings.STRATA_PACK_SIZE)
    )
    try:
        for path, local in sorted(merged.files.items()):
            size = os.path.getsize(local)
            if ingest is not None:
                record = ingest.add_file(local, size)
                records[record.digest] = record
                digest = record.digest
            else:
                digest = _digest_of(local)
            edits[path] = treeformat.Entry(path.rpartition("/")[2], merged.kinds[path], size, digest)
        report = ingest.finish() if ingest is not None else None
    except BaseException:
        if ingest is not None:
            ingest.abort()
        raise
    target_head, source_head = plan.target_head, plan.source_head
    load = _cached_loader()
    built = treemerge.tree_edit(target_head.tree_id, edits, load=load, file_count=target_head.file_count)

    def new_schema(path: str) -> dict[str, str]:
        if path in merged.files:
            with open(merged.files[path], "rb") as handle:
                return read_schema(path, handle.read())
        return version_schema(source_head, path)

    outcome.bump, outcome.bump_reasons = commit_bump(target_head, built.root_id, built.trees, new_schema)
    if dry_run:
        return outcome
    assert report is not None
    request = commit_on_head(
        user=user,
        dataset=plan.ask.dataset,
        branch_name=plan.ask.target,
        head=target_head,
        author=author,
        message=plan.ask.message or f"Merge branch {plan.ask.source} into {plan.ask.target}",
    )
    request.merge_parent = source_head
    request.via = via
    tree = (built.root_id, built.trees, built.file_count, built.logical)
    request.content = CommitContent.stored(tree, records, report)
    request.relied_on = report.reused_chunks
    request.relies_on_version = source_head
    request.bump, request.bump_reasons = outcome.bump, outcome.bump_reasons
    request.card_id = _merged_card(plan)

    def record_merge(version: Version) -> None:
        AuditEvent.objects.create(
            user=user if user is not None and user.is_authenticated else None,
            actor=request.author,
            action="version.merge",
            dataset=plan.ask.dataset,
            object_type="version",
            object_id=version.id,
            before={
                "target": target_head.id,
                "source": source_head.id,
                "base": plan.base.id if plan.base else None,
            },
            after={"version": version.id, "semver": version.semver, **plan.ask.as_options()},
        )
        for merged_hook in hooks.merged:
            merged_hook(version, target_head, source_head, user, request.author)

    request.within.append(record_merge)
    outcome.version = _commit_or_moved(request, plan)
    return outcome


def _digest_of(local: str) -> str:
    """The digest the store would give a merged file a dry run does not store: the
    BLAKE3 hash of its bytes (of its one chunk, or of the whole file)."""
    hasher = blake3()
    with open(local, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(piece)
    return hasher.hexdigest()


def _merged_card(plan: MergePlan) -> str | None:
    """The card three ways: the source's if only it edited the card, else the target's."""
    base_card = plan.base.card_id if plan.base else None
    if plan.target_head.card_id == base_card and plan.source_head.card_id != base_card:
        return plan.source_head.card_id
    if plan.target_head.card_id != plan.source_head.card_id and plan.source_head.card_id != base_card:
        plan.warnings.append("both branches edited the dataset card: the merge keeps the target's.")
    return plan.target_head.card_id


def _commit_or_moved(request: CommitRequest, plan: MergePlan) -> Version:
    try:
        return version_commit(request)
    except ConflictError:
        current = (
            Branch.objects.filter(dataset=plan.ask.dataset, name=plan.ask.target)
            .values_list("head_id", flat=True)
            .first()
        )
        if current != plan.target_head.id:
            raise ConflictError(
                f"branch {plan.ask.target} of {plan.ask.dataset.name} moved while the merge ran;"
                " nothing was merged: try again to merge onto the new head."
            ) from None
        raise


def merge_branches(
    *,
    user: permissions.User,
    dataset_name: str,
    source: str,
    into: str | None = None,
    strategy: str | None = None,
    path_strategies: dict[str, str] | None = None,
    keys: dict[str, str] | None = None,
    message: str = "",
    dry_run: bool = False,
    author: str = "",
    progress: Progress | None = None,
    attempts: int = 3,
    via: str = "",
) -> MergeOutcome:
    """Merge branch `source` of a dataset into `into` (its default branch) in one go.

    When the target moves while the merge is worked out, the merge is worked out
    again on the new head, up to `attempts` times; a push is never lost."""
    ask = merge_ask(
        user=user,
        dataset_name=dataset_name,
        source=source,
        into=into,
        strategy=strategy,
        path_strategies=path_strategies,
        keys=keys,
        message=message,
        dry_run=dry_run,
        via=via,
    )
    if user is not None:
        author = user.get_username()
    if not author and not dry_run:
        raise UserError("a merge needs an author.")
    for attempt in range(attempts):
        plan = merge_plan(ask)
        try:
            return merge_finish(plan, user=user, author=author, dry_run=dry_run, progress=progress, via=via)
        except ConflictError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# -- merges on a Merge row (the web, the API, a worker) -------------------------------


def merge_request(
    *,
    user: permissions.User,
    dataset_name: str,
    source: str,
    into: str | None = None,
    strategy: str | None = None,
    path_strategies: dict[str, str] | None = None,
    keys: dict[str, str] | None = None,
    message: str = "",
    dry_run: bool = False,
    expect_heads: tuple[str, str] | None = None,
    inline: bool = False,
) -> Merge:
    """Record a merge asked for on the web or through the API, and work it out now
    if its tables are small, or queue it for a worker (``Merge.State.QUEUED``).

    `expect_heads` (target head id, source head id) are the heads of the dry run the
    asker looked at: a branch that moved since is refused, so a strategy never
    settles conflicts nobody saw. `inline` works it out here whatever its size (a
    worker that needs the outcome to go on)."""
    ask = merge_ask(
        user=user,
        dataset_name=dataset_name,
        source=source,
        into=into,
        strategy=strategy,
        path_strategies=path_strategies,
        keys=keys,
        message=message,
        dry_run=dry_run,
    )
    plan = merge_plan(ask)
    if expect_heads is not None:
        _check_heads(plan, *expect_heads, since="the dry run you looked at")
    account = user if user is not None and user.is_authenticated else None
    row = Merge.objects.create(
        id=uuid.uuid4().hex,
        dataset=ask.dataset,
        source=ask.source,
        target=ask.target,
        source_head=plan.source_head,
        target_head=plan.target_head,
        options=ask.as_options(),
        dry_run=dry_run,
        user=account,
        author=account.get_username() if account else "",
    )
    if not inline and plan.table_bytes > settings.STRATA_MERGE_INLINE_BYTES:
        job_enqueue("catalog.tasks.merge_run", row.id)
        return row
    merge_run(row.id, plan=plan)
    row.refresh_from_db()
    return row


# A merge a worker claimed but has not touched for this long is taken to have lost
# its worker: the resume task queues it again (progress keeps `updated` fresh).
STALLED_AFTER = timedelta(minutes=10)


def _claim(merge_id: str) -> bool:
    """Move a queued (or stalled) merge to running; False if another worker has it
    or it is finished — so a task delivered twice works a merge out once."""
    now = timezone.now()
    claimable = Q(state=Merge.State.QUEUED) | Q(state=Merge.State.RUNNING, updated__lt=now - STALLED_AFTER)
    return Merge.objects.filter(claimable, id=merge_id).update(state=Merge.State.RUNNING, updated=now) == 1


def merge_run(merge_id: str, *, plan: MergePlan | None = None) -> None:
    """Work out a recorded merge and record its outcome (the worker's task body).

    Every way it can end is recorded on the row, so its page never waits for ever:
    the outcome, or the refusal in one sentence, or a reference to the log."""
    if not _claim(merge_id):
        return
    row = Merge.objects.select_related("dataset", "user", "source_head", "target_head").get(id=merge_id)
    try:
        outcome = _run_recorded(row, plan)
    except (UserError, ConflictError, IntegrityFailure) as error:
        _fail(row.id, str(error))
        return
    except Exception:
        reference = uuid.uuid4().hex[:12]
        logger.exception("merge %s failed (reference %s)", row.id, reference)
        _fail(row.id, f"the merge failed on the server; nothing was merged (reference {reference}).")
        return
    state = Merge.State.CONFLICTS if outcome.conflict_count else Merge.State.DONE
    Merge.objects.filter(id=row.id).update(
        state=state, progress=1.0, result=outcome.as_dict(), version=outcome.version, updated=timezone.now()
    )


def _run_recorded(row: Merge, plan: MergePlan | None) -> MergeOutcome:
    if plan is None:
        options = row.options or {}
        ask = MergeAsk(
            dataset=row.dataset,
            source=row.source,
            target=row.target,
            strategy=options.get("strategy"),
            path_strategies=options.get("path_strategies") or {},
            keys=options.get("keys") or {},
            message=options.get("message") or "",
        )
        plan = merge_plan(ask)
    _check_heads(plan, row.target_head_id, row.source_head_id, "the merge was asked for")
    return merge_finish(
        plan, user=row.user, author=row.author, dry_run=row.dry_run, progress=_progress_recorder(row.id)
    )


def _check_heads(plan: MergePlan, target_id: str, source_id: str, since: str) -> None:
    """The merge is worked out on the heads the asker saw, or not at all."""
    for branch, head, expected in (
        (plan.ask.target, plan.target_head, target_id),
        (plan.ask.source, plan.source_head, source_id),
    ):
        if head.id != expected:
            raise ConflictError(
                f"branch {branch} of {plan.ask.dataset.name} moved since {since} (it is now at"
                f" {head.semver}); nothing was merged: look at the merge again."
            )


def _fail(merge_id: str, error: str) -> None:
    Merge.objects.filter(id=merge_id).update(state=Merge.State.FAILED, error=error, updated=timezone.now())


def merges_stalled() -> list[str]:
    """Merges left queued or running by a worker that died or a message that was lost."""
    cutoff = timezone.now() - STALLED_AFTER
    stalled = Merge.objects.filter(state__in=[Merge.State.QUEUED, Merge.State.RUNNING], updated__lt=cutoff)
    return list(stalled.values_list("id", flat=True))


def _progress_recorder(merge_id: str) -> Progress:
    last = [0.0]

    def record(fraction: float) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1.0:
            last[0] = fraction
            Merge.objects.filter(id=merge_id).update(progress=min(fraction, 0.99), updated=timezone.now())

    return record
