"""Uploading a new version from the browser: files, or a .zip or .tar to unpack.

The uploaded bytes never sit whole in memory: Django spools each file to disk as it
arrives (past 2.5 MB), `UploadLimitHandler` stops the request as soon as it passes
the size limit, and files are copied or unpacked block by block into a private
staging folder. Every archive entry is checked before anything is written for it —
an absolute name, a `..`, a name the store refuses (``strata_store.paths``), a
link, a device, or an entry clashing with another is refused with a sentence naming
it — and every byte read is checked by the archive's own checksums, to the end of
the stream. Only a staging folder that is complete and safe is handed to the same
`version_push` the command line uses; whatever goes wrong before that leaves nothing
in the store, and the staging folder is always removed.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import re
import shutil
import stat as statmod
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from typing import IO, Self

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

from catalog import permissions
from catalog.domain.formatting import human_bytes
from catalog.errors import UserError
from catalog.models import Dataset
from catalog.services.validation import parse_code_ref
from catalog.services.versions import PushResult, check_dataset_name, version_push
from strata_store import paths

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_BLOCK = 1024 * 1024
# Room for the form's other fields around the files in a multipart body.
_FORM_OVERHEAD = 256 * 1024
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class UploadTooLarge(UserError):
    """The upload (or what an archive unpacks to) is over the limit (HTTP 413)."""

    http_status = 413
    kind = "too_large"


def too_large_message(limit: int) -> str:
    return (
        f"This upload is larger than the limit of {human_bytes(limit)}; nothing was stored. "
        "Upload less at a time, or push from the command line: "
        "python manage.py strata push PATH DATASET."
    )


def upload_limit() -> int:
    return int(settings.STRATA_UPLOAD_MAX_BYTES)


class UploadRequest(HttpRequest):
    """A request whose files `UploadLimitHandler` counts. Django's own `HttpRequest`
    does not declare `upload_refused`, which the handler sets only when it refuses
    the upload: the view reads it with a default."""

    upload_refused: str


class UploadLimitHandler(FileUploadHandler):
    """The first upload handler of an upload request: it counts the bytes of every
    file as they arrive and stops parsing once they pass the limit. Django then
    reads and drops the rest of the body (so the browser receives the answer
    instead of a reset connection) and deletes the files spooled so far.

    The view sees `request.upload_refused`, a sentence to show.
    """

    request: UploadRequest | None

    def __init__(self, request: UploadRequest | None = None, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = upload_limit() if limit is None else limit
        self.received = 0
        self.over = False

    def _refuse(self) -> None:
        if self.request is not None:
            self.request.upload_refused = too_large_message(self.limit)
        raise StopUpload(connection_reset=False)

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # A declared length far past the limit is refused at the first file, without
        # spooling any of it; the form fields before the files are still read.
        self.over = content_length is not None and content_length > self.limit + _FORM_OVERHEAD
        return None

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        if self.over:
            self._refuse()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self._refuse()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


class _Budget:
    """Bytes and entries still allowed into the staging folder (archives can unpack
    to far more than they weigh, or to millions of tiny files)."""

    def __init__(self, limit: int, entry_limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.entry_limit = entry_limit
        self.entries = 0

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise UploadTooLarge(too_large_message(self.limit))

    def take_entries(self, count: int) -> None:
        self.entries += count
        if self.entries > self.entry_limit:
            raise UploadTooLarge(
                f"This upload holds more than {self.entry_limit:,} files and folders, so nothing was "
                "stored; upload fewer at a time, or push from the command line: "
                "python manage.py strata push PATH DATASET."
            )


class _Layout:
    """What the staging folder will hold, path by path, across every file of the
    upload: an entry that clashes with an earlier one (the same file twice, or a
    file where a folder is, or the reverse) is refused before anything is written
    for it, instead of failing half-way through unpacking."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}  # relpath -> "file" or "folder"

    def claim(self, relpath: str, *, folder: bool, source: str) -> None:
        parts = relpath.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if self.kinds.setdefault(parent, "folder") != "folder":
                raise _clash(source, parent)
        kind = "folder" if folder else "file"
        known = self.kinds.get(relpath)
        if known is None:
            self.kinds[relpath] = kind
        elif known != kind:
            raise _clash(source, relpath)
        elif kind == "file":
            raise UserError(f"{source} holds {relpath} twice, so nothing was stored; keep one of them.")


def _clash(source: str, path: str) -> UserError:
    return UserError(
        f"{source} holds {path} both as a file and as a folder, so nothing was stored; rename one of them."
    )


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _member_path(raw: str, archive: str) -> str:
    """The safe relative path of an archive entry, or UserError naming it.

    Archives made on Windows may separate names with backslashes; after that the
    entry obeys the rule every way into the store shares (``strata_store.paths``).
    """
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise UserError(
            f"{archive} holds an entry with an absolute path ({raw}); nothing was stored. "
            "Make the archive from inside the folder, with relative paths."
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UserError(
            f"{archive} holds an entry that climbs out of its folder ({raw}); nothing was stored. "
            "Archives may not contain '..' in their paths."
        )
    relpath = "/".join(parts)
    problem = paths.path_problem(relpath) if relpath else None
    if problem is not None:
        raise UserError(
            f"{archive} holds an entry that cannot be stored ({paths.shown(raw)}: it {problem}), "
            "so nothing was stored; rename it and make the archive again."
        )
    return relpath


# What reading a damaged archive raises, by format: zipfile (bad CRC, bad header),
# zlib (corrupt deflate data), gzip/bz2/lzma (bad CRC, a stream that ends early),
# tarfile (bad header, unexpected end of data); NotImplementedError and RuntimeError
# for a compression method Python lacks and an encrypted entry.
_DAMAGED = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
)


def _damaged(archive: str, where: str, error: BaseException) -> UserError:
    detail = str(error).rstrip(".") or type(error).__name__
    return UserError(
        f"{archive} is damaged at {where} ({detail}), so nothing was stored; make the archive again."
    )


def _copy(source: IO[bytes], target: str, budget: _Budget, archive: str, shown: str) -> None:
    """Copy one entry block by block. Read errors are the archive's damage; write
    errors (a full disk) are ours, and are not dressed up as the user's fault."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "xb") as out:
        while True:
            try:
                block = source.read(_BLOCK)
            except _DAMAGED as error:
                raise _damaged(archive, shown, error) from None
            if not block:
                return
            budget.take(len(block))
            out.write(block)


def _unzip(upload: UploadedFile, staging: str, budget: _Budget, layout: _Layout) -> None:
    name = upload.name or "the archive"
    assert upload.file is not None  # an uploaded file has its content
    try:
        archive = zipfile.ZipFile(upload.file)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise UserError(f"{name} is not a readable .zip file; nothing was stored.") from None
    with archive:
        members = archive.infolist()
        budget.take_entries(len(members))
        # Check every entry before writing anything, so a bad entry late in the
        # archive is reported without work wasted on the ones before it.
        paths_of = [_member_path(info.filename, name) for info in members]
        for info, relpath in zip(members, paths_of, strict=True):
            if statmod.S_ISLNK(info.external_attr >> 16):
                raise UserError(
                    f"{name} holds a link ({info.filename}); links cannot be uploaded, nothing was stored."
                )
            if relpath:
                layout.claim(relpath, folder=info.is_dir(), source=name)
        for info, relpath in zip(members, paths_of, strict=True):
            if not relpath:
                continue
            target = os.path.join(staging, relpath)
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            try:
                source = archive.open(info)
            except _DAMAGED as error:
                raise _damaged(name, info.filename, error) from None
            # Reading to the end is what checks the entry's CRC.
            with source:
                _copy(source, target, budget, name, info.filename)


# A damaged header, and a stream that ends inside one (typeshed does not list them).
_BAD_HEADER = (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError)  # type: ignore[attr-defined]


class _StrictTarInfo(tarfile.TarInfo):
    """Tar headers read strictly: Python's tarfile takes a damaged header (or a
    stream cut inside one) after the first as the end of the archive, silently
    dropping the rest; here it is an error."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile_)
        except _BAD_HEADER as error:
            # ReadError is not a HeaderError, so TarFile.next() passes it on.
            raise tarfile.ReadError(f"bad header: {error}") from None


def _untar(upload: UploadedFile, staging: str, budget: _Budget, layout: _Layout) -> None:
    name = upload.name or "the archive"
    try:
        archive = tarfile.open(fileobj=upload.file, mode="r:*", tarinfo=_StrictTarInfo)  # noqa: SIM115 (closed below)
    except _DAMAGED:
        raise UserError(f"{name} is not a readable .tar archive; nothing was stored.") from None
    with archive:
        members: list[tarfile.TarInfo] = []
        try:
            for member in archive:
                members.append(member)
                budget.take_entries(1)  # before listing millions of headers
        except _DAMAGED as error:
            where = f"the entry after {members[-1].name}" if members else "its first entry"
            raise _damaged(name, where, error) from None
        paths_of = [_member_path(member.name, name) for member in members]
        for member, relpath in zip(members, paths_of, strict=True):
            if member.issym() or member.islnk():
                raise UserError(
                    f"{name} holds a link ({member.name}); links cannot be uploaded, nothing was stored."
                )
            if not (member.isfile() or member.isdir()):
                raise UserError(
                    f"{name} holds {member.name}, which is neither a file nor a folder; nothing was stored."
                )
            if relpath:
                layout.claim(relpath, folder=member.isdir(), source=name)
        for member, relpath in zip(members, paths_of, strict=True):
            if not relpath:
                continue
            target = os.path.join(staging, relpath)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            try:
                source = archive.extractfile(member)
            except _DAMAGED as error:
                raise _damaged(name, member.name, error) from None
            if source is None:
                continue
            with source:
                _copy(source, target, budget, name, member.name)
        # A compressed stream's checksum (gzip's CRC, xz's check) is read only at
        # its very end, which extracting the entries never reaches: read on to the
        # end, so a damaged archive is refused rather than stored with bad bytes.
        stream = archive.fileobj
        try:
            while stream is not None and stream.read(_BLOCK):
                pass
        except _DAMAGED as error:
            raise _damaged(name, "its end", error) from None


def _store_file(upload: UploadedFile, staging: str, budget: _Budget, layout: _Layout) -> None:
    name = posixpath.basename((upload.name or "").replace("\\", "/"))
    problem = paths.path_problem(name)
    if problem is not None:
        raise UserError(
            f"{paths.shown(upload.name or '')} is not a file name that can be stored (it {problem}); "
            "rename the file and upload it again."
        )
    budget.take_entries(1)
    layout.claim(name, folder=False, source="the upload")
    target = os.path.join(staging, name)
    temporary = getattr(upload, "temporary_file_path", None)
    if temporary is not None:
        # Django already spooled this file to disk: link it instead of copying.
        try:
            os.link(temporary(), target)
            budget.take(upload.size or 0)
            return
        except OSError:
            pass  # another file system: copy below
    upload.seek(0)
    _copy(upload, target, budget, name, name)


def _check_allowed(user: permissions.User, dataset_name: str) -> None:
    """Refuse before any byte is staged (version_push checks again, at commit)."""
    check_dataset_name(dataset_name)
    dataset = Dataset.objects.filter(name=dataset_name).first()
    if dataset is None:
        permissions.require_role(user, permissions.STEWARD, "create datasets")
    else:
        permissions.require_write(user, dataset)


def version_upload(
    *,
    user: permissions.User,
    dataset_name: str,
    uploads: Sequence[UploadedFile],
    branch: str | None = None,
    message: str = "",
    stage: str | None = None,
    limit: int | None = None,
    code: str = "",
) -> PushResult:
    """Store uploaded files as a new version on a branch of a dataset (created at
    its first upload, like a first push). Archives (.zip, .tar, .tar.gz…) are
    unpacked; other files are stored at the top of the version under their names.

    Needs the steward role (and read access to an existing dataset). Raises
    UploadTooLarge past `limit` (default STRATA_UPLOAD_MAX_BYTES) or past
    STRATA_UPLOAD_MAX_ENTRIES files and folders, and UserError for an unsafe,
    clashing or damaged archive; in every case nothing is stored. `code` is the
    code that made the files, REPOSITORY#COMMIT (or #BRANCH).
    """
    _check_allowed(user, dataset_name)
    parse_code_ref(code)  # refused before a byte is copied
    if not uploads:
        raise UserError("choose at least one file or archive to upload.")
    limit = upload_limit() if limit is None else limit
    if sum(upload.size or 0 for upload in uploads) > limit:
        raise UploadTooLarge(too_large_message(limit))
    root = os.path.join(settings.STRATA_CACHE_DIR, "uploads")
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="upload-", dir=root)
    try:
        budget = _Budget(limit, int(settings.STRATA_UPLOAD_MAX_ENTRIES))
        layout = _Layout()
        for upload in uploads:
            if is_archive(upload.name or ""):
                upload.seek(0)
                if (upload.name or "").lower().endswith(".zip"):
                    _unzip(upload, staging, budget, layout)
                else:
                    _untar(upload, staging, budget, layout)
            else:
                _store_file(upload, staging, budget, layout)
        if not any(files for _, _, files in os.walk(staging)):
            raise UserError("the upload holds no files; nothing was stored.")
        return version_push(
            path=staging,
            dataset_name=dataset_name,
            user=user,
            branch=branch or None,
            message=message,
            stage=stage or None,
            stat_cache=False,
            code=code,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
