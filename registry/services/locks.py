"""Lock files: the exact dataset versions of a model or an experiment, written
down so that anyone can materialise the same bytes later.

``strata lock`` writes ``strata.lock`` (YAML)::

    # strata.lock: the exact dataset versions fraud@3.1 used.
    strata_lock: 1
    created: '2024-06-01T12:00:00+00:00'
    model: fraud@3.1
    code: https://git.example.org/ml/fraud#4c1d2e9   # the model's code, when it has one
    datasets:
    - role: train
      dataset: reviews
      semver: 2.3.0
      version: 5d0c…   # the version's id (64 hex digits)
      tree: 9a41…      # its root tree digest
      requested: reviews@main
      code: https://git.example.org/data/clean#3f2a9c1   # the version's code, when it has one
      files: 3
      bytes: 1234

``strata reproduce strata.lock DEST`` checks the whole lock against the catalog
before writing anything — every version must exist, belong to the dataset
named, and have the tree digest the lock carries (a lock edited by hand, or a
catalog that lost a version, is refused with every reason) — then pulls each
version into ``DEST/<role>/`` (or ``DEST/<dataset>/``) with ``version_pull``,
which verifies every byte. All versions are assembled in one staging folder and
moved into DEST at the end: a failure part-way leaves DEST as it was.

A rolled-back version is reproduced with a warning (the lock asks for exactly
it). Data in cold storage is reported with how long a restore takes; with
``restore=True`` the restores are requested and polled until readable.

The code references (``code``, REPOSITORY#COMMIT) say which code made each
version and which code the model was trained with; they are optional, so locks
written before they existed stay valid. A reproduction names them, and with
``code_dir`` checks the model's commit out in a clone already on this machine
(``registry.services.checkout``), checked before any data is written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.utils import timezone

from catalog import permissions
from catalog.domain.formatting import about, human_bytes, human_duration
from catalog.errors import NotFound, UserError
from catalog.models import DATASET_NAME_RE, Version
from catalog.selectors import resolve_spec
from catalog.services.pull import PullResult, version_pull
from catalog.services.validation import parse_code_ref
from catalog.store import DatabaseChunkIndex, file_chunks, get_backend, walk_tree
from registry.models import ROLE_RE, ModelVersion
from registry.selectors import model_get
from registry.services.checkout import code_checkout, code_checkout_check
from strata_store.backends import Backend, RestoreState
from strata_store.backends.s3 import GLACIER_RESTORE_SECONDS
from strata_store.staging import DestinationError, staging_for

LOCK_FORMAT = 1
DEFAULT_LOCK_NAME = "strata.lock"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class LockRefused(UserError):
    """The lock cannot be reproduced as it stands (unknown versions, digests
    that do not match): nothing was written."""


class NeedsRestore(UserError):
    """Some of the data is in cold storage and was not asked to be restored."""


@dataclass(slots=True)
class LockEntry:
    """One pinned dataset version in a lock."""

    dataset: str
    version: str  # the version's id
    tree: str  # its root tree digest
    semver: str = ""
    role: str = ""
    requested: str = ""
    files: int | None = None
    bytes: int | None = None
    code: str = ""  # the code that made the version, REPOSITORY#REF

    @property
    def folder(self) -> str:
        """Where it is materialised inside DEST."""
        return self.role or self.dataset

    @property
    def label(self) -> str:
        return f"{self.dataset}@{self.semver or self.version[:12]}"

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.role:
            data["role"] = self.role
        data.update(dataset=self.dataset, semver=self.semver, version=self.version, tree=self.tree)
        if self.requested:
            data["requested"] = self.requested
        if self.code:
            data["code"] = self.code
        if self.files is not None:
            data["files"] = self.files
        if self.bytes is not None:
            data["bytes"] = self.bytes
        return data


@dataclass(slots=True)
class Lock:
    entries: list[LockEntry]
    created: str = ""
    model: str = ""
    code: str = ""  # the model's code, REPOSITORY#COMMIT

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"strata_lock": LOCK_FORMAT, "created": self.created}
        if self.model:
            data["model"] = self.model
        if self.code:
            data["code"] = self.code
        data["datasets"] = [entry.as_dict() for entry in self.entries]
        return data


def _entry_for(version: Version, *, role: str = "", requested: str = "") -> LockEntry:
    return LockEntry(
        dataset=version.dataset.name,
        version=version.id,
        tree=version.tree_id,
        semver=version.semver,
        role=role,
        requested=requested,
        files=version.file_count,
        bytes=version.logical_bytes,
        code=version.code,
    )


def _check_folders(entries: Sequence[LockEntry]) -> None:
    seen: dict[str, LockEntry] = {}
    for entry in entries:
        other = seen.get(entry.folder)
        if other is not None:
            raise UserError(
                f"{other.label} and {entry.label} would both be written to {entry.folder}/: "
                "a lock holds one version per dataset, or per role when it comes from a model."
            )
        seen[entry.folder] = entry


def lock_build(*, user: permissions.User, specs: Iterable[str] = (), model: str | None = None) -> Lock:
    """A lock of the versions `specs` name now ('reviews@main' becomes the
    version main points at) and of every version model version `model` pinned."""
    entries: list[LockEntry] = []
    model_spec = model_code = ""
    if model:
        # One answer whether the model version is missing or pins a dataset the
        # user cannot read: a restricted dataset must not show through its name,
        # nor its existence through a different message.
        unlockable = NotFound(
            f"there is no model version {model} whose data you may read; check the name "
            "and version, or ask the owners of its datasets for access."
        )
        try:
            found: ModelVersion = model_get(user=user, spec=model)
        except NotFound:
            raise unlockable from None
        # A commit without its repository would not read back as a code reference.
        model_spec, model_code = found.spec, (found.code_ref if found.code_repo else "")
        pins = list(found.pins.select_related("version__dataset"))
        if not all(permissions.can_read(user, pin.version.dataset) for pin in pins):
            raise unlockable
        entries.extend(_entry_for(pin.version, role=pin.role, requested=pin.requested) for pin in pins)
    for spec in specs:
        _, version = resolve_spec(spec, user)
        entry = _entry_for(version, requested=spec)
        if any(e.version == entry.version and e.folder == entry.folder for e in entries):
            continue
        entries.append(entry)
    if not entries:
        raise UserError("name what to lock: DATASET@REF arguments, or --model MODEL@VERSION.")
    _check_folders(entries)
    return Lock(
        entries=entries,
        created=timezone.now().isoformat(timespec="seconds"),
        model=model_spec,
        code=model_code,
    )


def lock_dump(lock: Lock) -> str:
    """The lock as the YAML text of strata.lock."""
    subject = lock.model or ", ".join(entry.label for entry in lock.entries)
    header = (
        f"# strata.lock: the exact dataset versions {subject} used.\n"
        "# Materialise them, every byte verified: python manage.py strata reproduce strata.lock DEST\n"
    )
    return header + yaml.safe_dump(lock.as_dict(), sort_keys=False, allow_unicode=True)


def lock_write(lock: Lock, path: str) -> None:
    """Write the lock to `path` whole (a temporary file renamed into place)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"cannot write {path}: its folder does not exist.")
    fd, temporary = tempfile.mkstemp(prefix=".strata-lock-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(lock_dump(lock))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def lock_parse(text: str, *, name: str = DEFAULT_LOCK_NAME) -> Lock:
    """Read a lock's text, checking its shape (not yet against the catalog)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LockRefused(f"{name} is not valid YAML{where}; nothing was written.") from None
    if not isinstance(data, dict) or "strata_lock" not in data:
        raise LockRefused(f"{name} is not a strata lock (it has no strata_lock: {LOCK_FORMAT} line).")
    if data["strata_lock"] != LOCK_FORMAT:
        raise LockRefused(
            f"{name} is a strata lock of format {data['strata_lock']!r}; this Strata reads format {LOCK_FORMAT}."
        )
    items = data.get("datasets")
    if not isinstance(items, list) or not items:
        raise LockRefused(f"{name} lists no datasets.")
    entries = []
    for number, item in enumerate(items, start=1):
        where = f"{name}, dataset {number}"
        if not isinstance(item, dict):
            raise LockRefused(f"{where} is not a mapping of dataset, version and tree.")
        dataset, version, tree = item.get("dataset"), item.get("version"), item.get("tree")
        role = item.get("role") or ""
        if not isinstance(dataset, str) or not DATASET_NAME_RE.match(dataset):
            raise LockRefused(f"{where} has no valid dataset name.")
        for key, value in (("version", version), ("tree", tree)):
            if not isinstance(value, str) or not _HEX64.match(value):
                raise LockRefused(f"{where} ({dataset}): {key} must be 64 hexadecimal digits.")
        if not isinstance(role, str) or (role and not ROLE_RE.match(role)):
            raise LockRefused(f"{where} ({dataset}): {role!r} is not a role name.")
        code = _code_read(item, f"{where} ({dataset})")
        entries.append(
            LockEntry(
                dataset=dataset,
                version=str(version),
                tree=str(tree),
                semver=str(item.get("semver") or ""),
                role=role,
                requested=str(item.get("requested") or ""),
                files=item.get("files") if isinstance(item.get("files"), int) else None,
                bytes=item.get("bytes") if isinstance(item.get("bytes"), int) else None,
                code=code,
            )
        )
    try:
        _check_folders(entries)
    except UserError as error:
        raise LockRefused(f"{name}: {error}") from None
    model = data.get("model")
    return Lock(
        entries=entries,
        created=str(data.get("created") or ""),
        model=str(model or ""),
        code=_code_read(data, name),
    )


def _code_read(item: dict, where: str) -> str:
    """The code reference of a lock or of one of its entries ('' when it has none)."""
    code = item.get("code") or ""
    if not isinstance(code, str):
        raise LockRefused(f"{where}: code must be written REPOSITORY#COMMIT.")
    try:
        parse_code_ref(code)
    except UserError as error:
        raise LockRefused(f"{where}: {error}") from None
    return code.strip()


def lock_read(path: str) -> Lock:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise UserError(f"there is no lock file {path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path} ({error.__class__.__name__}).") from None
    return lock_parse(text, name=os.path.basename(path) or path)


# -- checking a lock against the catalog -------------------------------------------------


@dataclass(slots=True)
class Checked:
    entry: LockEntry
    version: Version


def lock_check(
    *, user: permissions.User, lock: Lock, name: str = DEFAULT_LOCK_NAME
) -> tuple[list[Checked], list[str]]:
    """Each entry's version, after checking that it exists, is readable, belongs
    to the dataset named and has the tree digest (and semantic version) the lock
    carries. Every problem is collected and the lock refused with all of them.
    Returns the versions and the warnings (rolled-back versions)."""
    found = {
        version.id: version
        for version in Version.objects.filter(pk__in=[e.version for e in lock.entries]).select_related(
            "dataset"
        )
    }
    problems: list[str] = []
    warnings: list[str] = []
    checked: list[Checked] = []
    for entry in lock.entries:
        version = found.get(entry.version)
        if version is not None and not permissions.can_read(user, version.dataset):
            version = None
        if version is None:
            problems.append(
                f"{entry.label} names version {entry.version[:12]}…, which this catalog does not have"
            )
            continue
        if version.dataset.name != entry.dataset:
            problems.append(
                f"version {entry.version[:12]}… belongs to {version.dataset.name}, not {entry.dataset}"
            )
            continue
        if version.tree_id != entry.tree:
            problems.append(
                f"{entry.label}: the lock's tree digest {entry.tree[:12]}… does not match the version's "
                f"tree {version.tree_id[:12]}… (was the lock edited?)"
            )
            continue
        if entry.semver and entry.semver != version.semver:
            problems.append(
                f"{entry.dataset} version {entry.version[:12]}… is {version.semver}, not {entry.semver} "
                "as the lock says (was the lock edited?)"
            )
            continue
        if entry.code and entry.code != version.code:
            problems.append(
                f"{entry.label} was made with code {version.code or '(none recorded)'}, not {entry.code} "
                "as the lock says (was the lock edited?)"
            )
            continue
        if version.rolled_back:
            reason = f": {version.rolled_back_reason}" if version.rolled_back_reason else ""
            warnings.append(
                f"{entry.label} was rolled back{reason}. Reproducing it anyway, as the lock pins exactly it."
            )
        checked.append(Checked(entry, version))
    if problems:
        raise LockRefused(f"refusing {name}, nothing was written: " + "; ".join(problems) + ".")
    return checked, warnings


# -- cold storage --------------------------------------------------------------------------


@dataclass(slots=True)
class ColdData:
    """Packs the versions need that cannot be read now."""

    packs: dict[str, RestoreState] = field(default_factory=dict)
    bytes: int = 0
    versions: list[str] = field(default_factory=list)

    @property
    def restoring(self) -> bool:
        return bool(self.packs) and all(state.restoring for state in self.packs.values())


def _packs_of(versions: Sequence[Version]) -> dict[str, tuple[int, set[str]]]:
    """pack id -> (bytes of chunks needed from it, labels of versions needing it)."""
    needed: dict[str, tuple[int, set[str]]] = {}
    index = DatabaseChunkIndex()
    for version in versions:
        files = [item.entry.digest for item in walk_tree(version.tree_id) if item.entry.is_file]
        chunk_ids = [chunk for chunks in file_chunks(files).values() for chunk in chunks]
        for location in index.locate(chunk_ids).values():
            size, labels = needed.get(location.pack_id, (0, set()))
            labels.add(str(version))
            needed[location.pack_id] = (size + location.stored_length, labels)
    return needed


def cold_data(versions: Sequence[Version], backend: Backend | None = None) -> ColdData:
    """Which packs of `versions` are in cold storage and not yet readable."""
    backend = backend or get_backend()
    cold = ColdData()
    labels: set[str] = set()
    for pack_id, (size, needed_by) in sorted(_packs_of(versions).items()):
        state = backend.restore_state(pack_id)
        if not state.readable:
            cold.packs[pack_id] = state
            cold.bytes += size
            labels |= needed_by
    cold.versions = sorted(labels)
    return cold


def restore_estimate(cold: ColdData, backend: Backend | None = None) -> float:
    """Seconds until the cold packs are readable: what the store says for
    restores under way, else what a restore takes on this backend."""
    known = [state.ready_in_seconds for state in cold.packs.values() if state.ready_in_seconds is not None]
    if known:
        return max(known)
    backend = backend or get_backend()
    seconds = getattr(backend, "restore_seconds", None)
    if seconds is None:
        seconds = GLACIER_RESTORE_SECONDS
    return float(seconds)


def _cold_message(cold: ColdData, estimate: float) -> str:
    one = len(cold.packs) == 1
    what = f"{len(cold.packs)} pack{'' if one else 's'} ({human_bytes(cold.bytes)})"
    holding, verb = ", ".join(cold.versions), "is" if one else "are"
    if cold.restoring:
        return f"{what} of {holding} {verb} being restored from cold storage; ready in {about(estimate)}"
    return f"{what} of {holding} {verb} in cold storage; a restore takes {about(estimate)}"


def restore_wait(
    *,
    versions: Sequence[Version],
    notify: Callable[[str], None],
    poll_seconds: float = 60.0,
    timeout_seconds: float | None = None,
) -> ColdData:
    """Request restores of every cold pack `versions` need, then poll until all
    are readable (or the timeout passes: UserError). Returns what was cold."""
    backend = get_backend()
    cold = cold_data(versions, backend)
    if not cold.packs:
        return cold
    for pack_id in cold.packs:
        cold.packs[pack_id] = backend.request_restore(pack_id)
    estimate = restore_estimate(cold, backend)
    notify(
        f"Requested restores: {_cold_message(cold, estimate)}. Waiting, checking every {poll_seconds:g} s."
    )
    started = time.monotonic()
    waiting = dict(cold.packs)
    while waiting:
        for pack_id in list(waiting):
            state = backend.restore_state(pack_id)
            if state.readable:
                del waiting[pack_id]
            else:
                waiting[pack_id] = state
        if not waiting:
            break
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise UserError(
                f"{len(waiting)} packs were still being restored after {human_duration(timeout_seconds)}; "
                "the restores go on: run the same command again later. Nothing was written."
            )
        time.sleep(poll_seconds)
    count = len(cold.packs)
    notify(
        f"Restored {count} pack{'s' if count != 1 else ''} after {human_duration(time.monotonic() - started)}."
    )
    return cold


# -- reproducing ------------------------------------------------------------------------------


@dataclass(slots=True)
class ReproduceResult:
    dest: str
    pulled: list[tuple[LockEntry, PullResult]]
    warnings: list[str]
    restored_packs: int = 0
    model: str = ""
    code: str = ""  # the model's code, REPOSITORY#COMMIT
    code_dir: str = ""  # where it was checked out (with --code-dir)
    checked_out: str = ""  # the commit checked out there, in full

    def as_dict(self) -> dict[str, Any]:
        return {
            "dest": self.dest,
            "warnings": self.warnings,
            "restored_packs": self.restored_packs,
            "model": self.model,
            "code": self.code,
            "checked_out": {"dir": self.code_dir, "commit": self.checked_out} if self.checked_out else None,
            "datasets": [
                {
                    **entry.as_dict(),
                    "folder": entry.folder,
                    "pulled_files": result.file_count,
                    "pulled_bytes": result.bytes_written,
                }
                for entry, result in self.pulled
            ],
        }


def lock_reproduce(
    *,
    user: permissions.User,
    lock: Lock,
    dest: str,
    name: str = DEFAULT_LOCK_NAME,
    force: bool = False,
    restore: bool = False,
    poll_seconds: float = 60.0,
    timeout_seconds: float | None = None,
    notify: Callable[[str], None] = lambda message: None,
    code_dir: str | None = None,
) -> ReproduceResult:
    """Materialise every version of `lock` into DEST/<role or dataset>/, every
    byte verified, or write nothing. `force` replaces those folders in a
    non-empty DEST (other files there are left alone).

    `code_dir` is a git clone of the model's code: once the data is in place, its
    HEAD is detached at the commit the lock records for the model. Whether it
    can be is checked first, with the lock: a clone that lacks the commit, or a
    folder that is no clone, is refused before anything is written."""
    checked, warnings = lock_check(user=user, lock=lock, name=name)
    commit = ""
    if code_dir is not None:
        if not lock.code:
            raise UserError(
                f"{name} records no code reference for a model, so there is nothing to check out "
                "in --code-dir; nothing was written."
            )
        commit = code_checkout_check(code_dir=code_dir, code=lock.code)
    for item in checked:
        # A lock written before versions carried code still names the code they carry.
        item.entry.code = item.entry.code or item.version.code
    for warning in warnings:
        notify(f"warning: {warning}")
    versions = [item.version for item in checked]
    backend = get_backend()
    cold = cold_data(versions, backend)
    restored = 0
    if cold.packs:
        if not restore:
            estimate = restore_estimate(cold, backend)
            raise NeedsRestore(
                f"{_cold_message(cold, estimate)}. Run again with --restore to request the restore and wait "
                "for it; nothing was written."
            )
        restored = len(
            restore_wait(
                versions=versions, notify=notify, poll_seconds=poll_seconds, timeout_seconds=timeout_seconds
            ).packs
        )
    try:
        staging, existed = staging_for(dest, force=force, verb="reproduce")
    except DestinationError as error:
        raise UserError(str(error)) from None
    dest = os.path.abspath(dest)
    pulled: list[tuple[LockEntry, PullResult]] = []
    try:
        for item in checked:
            result = version_pull(version=item.version, dest=os.path.join(staging, item.entry.folder))
            pulled.append((item.entry, result))
        if existed:
            for item in checked:
                target = os.path.join(dest, item.entry.folder)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                elif os.path.lexists(target):
                    os.unlink(target)
                os.replace(os.path.join(staging, item.entry.folder), target)
            os.rmdir(staging)
        else:
            os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if code_dir is not None and commit:
        code_checkout(code_dir=code_dir, commit=commit)
    final = [
        (
            entry,
            PullResult(
                result.version, os.path.join(dest, entry.folder), result.file_count, result.bytes_written
            ),
        )
        for entry, result in pulled
    ]
    return ReproduceResult(
        dest=dest,
        pulled=final,
        warnings=warnings,
        restored_packs=restored,
        model=lock.model,
        code=lock.code,
        code_dir=os.path.abspath(code_dir) if code_dir is not None and commit else "",
        checked_out=commit,
    )
