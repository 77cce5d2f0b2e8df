"""The one way a version comes to exist.

Every writer — a local push (the command line, a browser upload), a remote
push (the client, once a worker has verified what it sent), a split, a card
edit, a rollback — asks for a version the same way:

1. ``commit_prepare`` checks who commits what where, before any data is
   written: the dataset's name, the branch, the stage, an explicit semantic
   version, a back-dated commit, the writer's role and the head the commit will
   build on. It returns a ``CommitRequest`` and writes nothing.
2. The writer stores its data (packs first: invariant 2) and fills in the
   request's ``content``, how big a change it is (``bump``), and anything its
   own rows need written with the version (``within``).
3. ``version_commit`` registers the stored data, then creates the version and
   moves the branch by compare-and-swap (invariant 3), in one transaction with
   the writer's own rows and the audit event (invariant 7).

docs/design.md, "The commit path", walks through it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.contrib.auth.models import User as Account
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from catalog import hooks, permissions
from catalog.errors import ConflictError, NotFound, UserError
from catalog.models import (
    AuditEvent,
    Branch,
    Chunk,
    Dataset,
    FileManifest,
    Pack,
    Stage,
    Tree,
    Version,
)
from catalog.services.collection import reusing
from catalog.services.possession import dataset_files_add, manifest_chunks_add
from catalog.services.validation import check_dataset_name, check_ref_name, parse_code_ref, parse_semver
from catalog.store import batched, chunks_register, tree_row
from strata_store.hashing import digest_hex
from strata_store.store import FileRecord, IngestReport

UNSET = object()  # "whatever the branch head is now", as opposed to None, "no head"


@dataclass(slots=True)
class CommitContent:
    """What the new version holds: its root tree, and what the commit must index.

    `trees` are the encoded trees the writer built (those already stored may be
    left out), `records` the files it stored (their chunk lists), `packs` the
    packs it wrote. A version that keeps another's tree (a card edit, a
    rollback) names that tree and nothing else."""

    root_id: str
    file_count: int
    logical: int
    trees: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    records: dict[str, FileRecord] = field(default_factory=dict)
    packs: list = field(default_factory=list)
    new_bytes: int = 0
    stored_bytes: int = 0

    @classmethod
    def stored(
        cls,
        tree: tuple[str, dict[str, tuple[bytes, int]], int, int],
        records: dict[str, FileRecord],
        report: IngestReport,
    ) -> CommitContent:
        """The content a writer has just stored through ``Ingest``: its trees (root
        id, trees, file count, logical bytes), its file records and the packs the
        ingest wrote, with what they added."""
        root_id, trees, file_count, logical = tree
        return cls(
            root_id=root_id,
            file_count=file_count,
            logical=logical,
            trees=trees,
            records=records,
            packs=report.packs,
            new_bytes=report.new_raw_bytes,
            stored_bytes=report.new_bytes,
        )

    @classmethod
    def tree_of(cls, version: Version) -> CommitContent:
        """The content of `version`, unchanged: no data to store."""
        return cls(root_id=version.tree_id, file_count=version.file_count, logical=version.logical_bytes)


@dataclass(slots=True)
class CommitRequest:
    """A version asked for: where it goes, who makes it, and what it holds.

    Made by ``commit_prepare``; the writer sets `content` and what else applies,
    then hands it to ``version_commit``.

    `relied_on` names the chunks the new version reaches that the writer found
    already stored rather than wrote (deduplicated, or files it did not read
    again); they are checked to be still indexed as the version is created.
    `relies_on_version` is a version whose files the commit takes as stored
    without checking them (the head a push builds on, a split's source, the
    branch a merge takes files from): it must not have expired meanwhile.
    `within` are the writer's own writes (a split's run, a rollback's marks),
    made in the version's transaction. `merge_parent` makes the version a merge:
    its parents are the head it builds on, then this one. `code_repo` and
    `code_ref` name the code that made the version (a git repository and a commit
    or branch), when the writer gave them.
    """

    user: permissions.User
    dataset: Dataset | None
    dataset_name: str
    branch_name: str
    start_head: Version | None
    author: str
    message: str = ""
    stage: str | None = None
    explicit_semver: tuple[int, int, int] | None = None
    semver_override: str | None = None
    created: datetime | None = None
    content: CommitContent | None = None
    bump: str = "minor"
    bump_reasons: Sequence[str] = ()
    card_id: str | None = None
    relied_on: Iterable[str] = ()
    relies_on_version: Version | None = None
    within: list[Callable[[Version], None]] = field(default_factory=list)
    # A merge's second parent: the head of the branch merged in.
    merge_parent: Version | None = None
    # Who commits, when it is a service acting on an approved request
    # ("change-request", "rollback") rather than a writer's direct change: branch
    # protection (``hooks.commit_guards``) refuses direct changes only.
    via: str = ""
    code_repo: str = ""
    code_ref: str = ""


def commit_prepare(
    *,
    user: permissions.User,
    dataset_name: str,
    branch: str | None = None,
    parent: object = UNSET,
    author: str = "",
    message: str = "",
    stage: str | None = None,
    semver: str | None = None,
    semver_override: str | None = None,
    created: datetime | None = None,
    remote: bool = False,
    code: str = "",
) -> CommitRequest:
    """Every check a commit needs before its data is stored; writes nothing.

    `user` None is the trusted local command line or a worker acting on an
    approved request; anyone else needs write access (the steward role to create
    a dataset). `parent` is the head the writer saw: the commit is refused if
    the branch has moved since (None: only if it has no head yet); left out,
    whatever the head is now. `remote` callers are told about a dataset they
    may not create as if it did not exist, so answers never reveal which
    restricted names exist. `code` is the code that made the version,
    REPOSITORY#COMMIT (or #BRANCH).
    """
    check_dataset_name(dataset_name)
    code_repo, code_ref = parse_code_ref(code)
    if branch is not None:
        check_ref_name(branch)
    if stage is not None and stage not in Stage.values:
        raise UserError(f"{stage!r} is not a stage: use one of {', '.join(Stage.values)}.")
    explicit_semver = parse_semver(semver) if semver else None
    dataset = dataset_writable(user, dataset_name, remote=remote)
    if user is not None:
        author = user.get_username()
    if not author:
        raise UserError("a push needs an author.")
    branch_name = branch or (dataset.default_branch if dataset else "main")
    if dataset is not None:
        hooks.commit_check(dataset, branch_name, "")
    start_head = _start_head(dataset, dataset_name, branch_name, parent, remote=remote)
    if explicit_semver is not None and dataset is not None:
        check_explicit_semver(dataset, start_head, explicit_semver)
    if created is not None:
        check_commit_date(created, start_head)
    return CommitRequest(
        user=user,
        dataset=dataset,
        dataset_name=dataset_name,
        branch_name=branch_name,
        start_head=start_head,
        author=author,
        message=message,
        stage=stage,
        explicit_semver=explicit_semver,
        semver_override=semver_override,
        created=created,
        code_repo=code_repo,
        code_ref=code_ref,
    )


def commit_on_head(
    *, user: permissions.User, dataset: Dataset, branch_name: str, head: Version, author: str, message: str
) -> CommitRequest:
    """A request for a version on top of `head`, a head the caller has already
    resolved under its own checks (a card edit, a split, a rollback, a merge).
    Branch protection is asked again, with who commits, by ``version_commit``."""
    permissions.require_write(user, dataset)
    return CommitRequest(
        user=user,
        dataset=dataset,
        dataset_name=dataset.name,
        branch_name=branch_name,
        start_head=head,
        author=author,
        message=message,
    )


def dataset_writable(user: permissions.User, name: str, *, remote: bool) -> Dataset | None:
    """The dataset `user` may commit to, or None when a steward's commit creates it."""
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        if remote and not permissions.has_role(user, permissions.STEWARD):
            raise NotFound(f"there is no dataset named {name!r}.")
        permissions.require_role(user, permissions.STEWARD, "create datasets")
        return None
    permissions.require_write(user, dataset)
    return dataset


def _start_head(
    dataset: Dataset | None, dataset_name: str, branch_name: str, parent: object, *, remote: bool
) -> Version | None:
    """The version the commit builds on (see ``commit_prepare``'s `parent`)."""
    current = branch_head(dataset, branch_name, remote=remote)
    if parent is UNSET:
        return current
    if parent is None:
        if current is not None:
            raise branch_moved(dataset_name, branch_name)
        return None
    start_head = Version.objects.filter(id=parent, dataset=dataset).first() if dataset else None
    if start_head is None:
        raise UserError(f"{str(parent)[:80]} is not a version of {dataset_name}.")
    if current is None or current.id != start_head.id:
        raise branch_moved(dataset_name, branch_name)
    return start_head


def branch_head(dataset: Dataset | None, branch: str, *, remote: bool) -> Version | None:
    """The head of `branch`, None for a dataset (or an empty one) that has no versions
    yet; an unknown branch of a dataset with versions is refused."""
    if dataset is None:
        return None
    row = Branch.objects.filter(dataset=dataset, name=branch).select_related("head").first()
    if row is not None:
        return row.head
    if not Branch.objects.filter(dataset=dataset).exists() and branch == dataset.default_branch:
        return None  # an empty dataset: its first commit creates the default branch
    if remote:
        how = f"create it first (POST /api/v1/datasets/{dataset.name}/branches)."
    else:
        how = f"create it first with `strata branch {dataset.name} {branch}`."
    raise UserError(f"dataset {dataset.name} has no branch {branch}; {how}")


def branch_moved(dataset_name: str, branch: str) -> ConflictError:
    return ConflictError(
        f"branch {branch} of {dataset_name} moved since your push began; "
        "your data is stored, push again to commit on top of the new head."
    )


def check_commit_date(created: datetime, parent: Version | None) -> None:
    """A back-dated commit keeps history in order: not in the future, not before
    the version it follows."""
    if timezone.is_naive(created):
        raise UserError("give the commit date with its time zone, e.g. 2026-05-01T09:00:00+00:00.")
    if created > timezone.now():
        raise UserError(f"the commit date {created.isoformat()} is in the future.")
    if parent is not None and created < parent.created:
        raise UserError(
            f"the commit date {created.isoformat()} is before the branch head's "
            f"({parent.created.isoformat()}): history must stay in order."
        )


def next_semver(dataset: Dataset, parent: Version | None, bump: str = "minor") -> tuple[int, int, int]:
    """The next free version number after `parent` for a change of kind `bump`.

    Numbers are unique per dataset, so a bump skips past what other branches took.
    """
    if parent is None:
        return (1, 0, 0)
    versions = Version.objects.filter(dataset=dataset)
    if bump == "major":
        top = versions.aggregate(top=Max("semver_major"))["top"] or 0
        return (top + 1, 0, 0)
    if bump == "patch":
        top = versions.filter(semver_major=parent.semver_major, semver_minor=parent.semver_minor).aggregate(
            top=Max("semver_patch")
        )["top"]
        return (parent.semver_major, parent.semver_minor, (top or 0) + 1)
    top = versions.filter(semver_major=parent.semver_major).aggregate(top=Max("semver_minor"))["top"]
    return (parent.semver_major, (top or 0) + 1, 0)


def check_explicit_semver(
    dataset: Dataset,
    start_head: Version | None,
    numbers: tuple[int, int, int],
    *,
    bump: str | None = None,
    reasons: Sequence[str] = (),
    override: str | None = None,
) -> None:
    """An explicit version must be new, newer than the head, and — unless
    overridden with a reason — not understate the change (`bump`)."""
    semver = ".".join(map(str, numbers))
    if start_head is not None and numbers <= (
        start_head.semver_major,
        start_head.semver_minor,
        start_head.semver_patch,
    ):
        raise UserError(f"version {semver} is not newer than the branch head's {start_head.semver}.")
    if Version.objects.filter(dataset=dataset, semver=semver).exists():
        raise UserError(f"{dataset.name} already has a version {semver}; choose another.")
    if bump is None or start_head is None or override:
        return
    head = (start_head.semver_major, start_head.semver_minor)
    understated = (bump == "major" and numbers[0] == head[0]) or (bump == "minor" and numbers[:2] == head)
    if understated:
        suggested = ".".join(map(str, next_semver(dataset, start_head, bump)))
        why = f" ({reasons[0]})" if reasons else ""
        raise UserError(
            f"version {semver} understates a {bump} change from {start_head.semver}{why}: use {suggested},"
            " or pass --allow-semver-override with the reason."
        )


def version_id_for(fields: dict[str, object]) -> str:
    """A version's id: the hash of everything that defines it."""
    return digest_hex(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())


def check_still_indexed(chunk_ids: Sequence[str], dataset_name: str) -> None:
    found = 0
    for batch in batched(chunk_ids, 5000):
        found += Chunk.objects.filter(id__in=batch).count()
    if found != len(chunk_ids):
        raise ConflictError(
            f"garbage collection removed {len(chunk_ids) - found} of the stored chunks this push to"
            f" {dataset_name} reuses while it ran; nothing was committed: push again to store them anew."
        )


def version_commit(request: CommitRequest) -> Version:
    """Register the stored data, then create the version and move the branch by
    compare-and-swap from the head seen when the commit was prepared.

    Every pack the content names must already be stored, and every chunk a
    record or tree names must be in the index: writers store first. The new
    version carries its parent's dataset card forward unless `card_id` names
    another. `created` dates it in the past (checked by ``commit_prepare``); the
    rows it writes are still stamped with the real time. `bump` (major, minor,
    patch: see ``catalog.selectors.changes.commit_bump``) chooses the next
    semantic version; an explicit one that understates it is refused unless
    `semver_override` gives the reason, which the audit event records.
    """
    if request.content is None:
        raise ValueError("a commit request needs its content before it is committed")
    if request.dataset is None:
        permissions.require_role(request.user, permissions.STEWARD, "create datasets")
    else:
        permissions.require_write(request.user, request.dataset)
        hooks.commit_check(request.dataset, request.branch_name, request.via)
    now = timezone.now()
    # First transaction: the stored data. These rows are content-addressed and name
    # only packs already written, so they are safe on their own, and a commit refused
    # below (a conflict) leaves its data registered: pushing again uploads nothing.
    with transaction.atomic():
        _register_content(request.content, now)
    # Second transaction: the version, and the branch moved by compare-and-swap.
    # Chunks this commit relies on but did not write must still be indexed, under
    # the lock garbage collection takes to delete (catalog.services.collection).
    relied = list(dict.fromkeys(request.relied_on))
    with reusing() if relied or request.relies_on_version else contextlib.nullcontext():
        if relied:
            check_still_indexed(relied, request.dataset_name)
        _check_not_expired(request.relies_on_version)
        try:
            with transaction.atomic():
                return _commit_version(request, now)
        except IntegrityError as error:
            raise ConflictError(
                f"another push to {request.dataset_name} committed at the same moment ({error}); push again."
            ) from None


def _register_content(content: CommitContent, now: datetime) -> None:
    Pack.objects.bulk_create(
        [Pack(id=p.pack_id, size=p.size, chunk_count=len(p.entries), created=now) for p in content.packs],
        ignore_conflicts=True,
    )
    for pack in content.packs:
        chunks_register(pack.pack_id, pack.entries)
    FileManifest.objects.bulk_create(
        [
            FileManifest(
                digest=record.digest,
                size=record.size,
                chunk_ids=b"".join(bytes.fromhex(c) for c in record.chunk_ids),
            )
            for record in content.records.values()
            if len(record.chunk_ids) > 1
        ],
        ignore_conflicts=True,
        batch_size=500,
    )
    manifest_chunks_add(content.records.values())
    Tree.objects.bulk_create(
        [tree_row(data, count) for data, count in content.trees.values()],
        ignore_conflicts=True,
        batch_size=500,
    )


def _check_not_expired(version: Version | None) -> None:
    if version is not None and Version.objects.filter(pk=version.pk, expired__isnull=False).exists():
        raise ConflictError(
            f"{version} expired under the retention policy while this push ran; nothing was committed: push again."
        )


def _commit_version(request: CommitRequest, now: datetime) -> Version:
    """The version row, the branch move, possession, the writer's rows and the audit
    event: the body of the commit's transaction."""
    if request.dataset is None:
        request.dataset = _dataset_create(request, now)
    dataset = request.dataset
    numbers = _numbers_for(request, dataset)
    version = _version_create(request, dataset, numbers, now)
    _branch_move(request, dataset, version, now)
    Dataset.objects.filter(pk=dataset.pk).update(updated=now)
    # What the dataset now holds: possession for later remote pushes.
    start_head = request.start_head
    dataset_files_add(
        dataset_id=dataset.pk,
        root_id=version.tree_id,
        parent_root_id=start_head.tree_id if start_head else None,
    )
    for write in request.within:
        write(version)
    for follower in hooks.committed:
        follower(version, request.branch_name)
    AuditEvent.objects.create(
        user=_account(request.user),
        actor=request.author,
        action="version.create",
        dataset=dataset,
        object_type="version",
        object_id=version.id,
        before={"branch": request.branch_name, "head": start_head.id if start_head else None},
        after={
            "branch": request.branch_name,
            "head": version.id,
            "semver": version.semver,
            "bump": request.bump,
            "bump_reasons": list(request.bump_reasons)[:20],
            **({"merged": request.merge_parent.id} if request.merge_parent else {}),
            **({"semver_override": request.semver_override} if request.semver_override else {}),
        },
    )
    return version


def _dataset_create(request: CommitRequest, now: datetime) -> Dataset:
    dataset = Dataset.objects.create(
        name=request.dataset_name, default_branch=request.branch_name, created=now, updated=now
    )
    account = _account(request.user)
    if account is not None:
        dataset.owners.add(account)
    AuditEvent.objects.create(
        user=account,
        actor=request.author,
        action="dataset.create",
        dataset=dataset,
        object_type="dataset",
        object_id=dataset.name,
        after={"name": dataset.name},
    )
    return dataset


def _account(user: permissions.User) -> Account | None:
    """The signed-in account behind `user`: None for the local operator or an anonymous visitor."""
    return user if user is not None and user.is_authenticated else None


def _numbers_for(request: CommitRequest, dataset: Dataset) -> tuple[int, int, int]:
    if request.explicit_semver is None:
        return next_semver(dataset, request.start_head, request.bump)
    # Checked before any work too; again here, against concurrent pushes, and now
    # against the kind of change as well.
    check_explicit_semver(
        dataset,
        request.start_head,
        request.explicit_semver,
        bump=request.bump,
        reasons=request.bump_reasons,
        override=request.semver_override,
    )
    return request.explicit_semver


def _version_create(
    request: CommitRequest, dataset: Dataset, numbers: tuple[int, int, int], now: datetime
) -> Version:
    content, start_head = request.content, request.start_head
    assert content is not None
    # In UTC, as the database gives it back, so the id can be recomputed from the row.
    committed = request.created.astimezone(UTC) if request.created is not None else now
    semver = ".".join(map(str, numbers))
    stage = request.stage or (start_head.stage if start_head else Stage.RAW)
    card = request.card_id or (start_head.card_id if start_head else None)
    id_fields: dict[str, object] = {
        "dataset": request.dataset_name,
        "tree": content.root_id,
        "parents": [v.id for v in (start_head, request.merge_parent) if v is not None],
        "author": request.author,
        "message": request.message,
        "created": committed.isoformat(),
        "semver": semver,
        "stage": stage,
    }
    if card:
        # Only when there is a card, so versions without one keep their ids.
        id_fields["card"] = card
    if request.code_repo or request.code_ref:
        # Likewise only when given: versions without a code reference keep their ids.
        id_fields["code"] = [request.code_repo, request.code_ref]
    return Version.objects.create(
        id=version_id_for(id_fields),
        dataset=dataset,
        parent=start_head,
        merge_parent=request.merge_parent,
        tree_id=content.root_id,
        author=request.author,
        message=request.message,
        created=committed,
        semver=semver,
        semver_major=numbers[0],
        semver_minor=numbers[1],
        semver_patch=numbers[2],
        stage=stage,
        file_count=content.file_count,
        logical_bytes=content.logical,
        new_bytes=content.new_bytes,
        stored_bytes=content.stored_bytes,
        card_id=card,
        code_repo=request.code_repo,
        code_ref=request.code_ref,
    )


def _branch_move(request: CommitRequest, dataset: Dataset, version: Version, now: datetime) -> None:
    name, start_head = request.branch_name, request.start_head
    if start_head is None:
        if Branch.objects.filter(dataset=dataset, name=name).exists():
            raise ConflictError(
                f"branch {name} of {request.dataset_name} was created by another push"
                " meanwhile; your data is stored, push again."
            )
        Branch.objects.create(dataset=dataset, name=name, head=version, created=now, updated=now)
        return
    # Compare-and-swap: move the head only if it is still where it was when this
    # commit was prepared, so a concurrent commit is never silently replaced.
    moved = Branch.objects.filter(dataset=dataset, name=name, head_id=start_head.id).update(
        head=version, updated=now
    )
    if moved != 1:
        raise ConflictError(
            f"branch {name} of {request.dataset_name} moved while you were pushing;"
            " your data is stored, push again to commit on top of the new head."
        )
