"""Uploading a new version from the browser: files, or a .zip or .tar to unpack.

The uploaded bytes never sit whole in memory: Django spools each file to disk as it
arrives (past 2.5 MB), `UploadLimitHandler` stops the request as soon as it passes
the size limit, and files are copied or unpacked block by block into a private
staging folder. Every archive entry is checked before anything is written for it —
an absolute name, a `..`, a link or a device is refused with a sentence naming the
entry. Only a staging folder that is complete and safe is handed to the same
`version_push` the command line uses; whatever goes wrong before that leaves nothing
in the store, and the staging folder is always removed.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat as statmod
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from catalog import permissions
from catalog.formatting import human_bytes
from catalog.models import Dataset
from catalog.storage import tree as treeformat

from .errors import UserError
from .versions import PushResult, check_dataset_name, version_push

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_BLOCK = 1024 * 1024
# Room for the form's other fields around the files in a multipart body.
_FORM_OVERHEAD = 256 * 1024
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class UploadTooLarge(UserError):
    """The upload (or what an archive unpacks to) is over the limit."""


def too_large_message(limit: int) -> str:
    return (
        f"This upload is larger than the limit of {human_bytes(limit)}; nothing was stored. "
        "Upload less at a time, or push from the command line: "
        "python manage.py strata push PATH DATASET."
    )


def upload_limit() -> int:
    return int(settings.STRATA_UPLOAD_MAX_BYTES)


class UploadLimitHandler(FileUploadHandler):
    """The first upload handler of an upload request: it counts the bytes of every
    file as they arrive and stops parsing once they pass the limit. Django then
    reads and drops the rest of the body (so the browser receives the answer
    instead of a reset connection) and deletes the files spooled so far.

    The view sees `request.upload_refused`, a sentence to show.
    """

    def __init__(self, request=None, limit: int | None = None) -> None:
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
    """Bytes still allowed into the staging folder (archives can unpack to far more
    than they weigh)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise UploadTooLarge(too_large_message(self.limit))


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _member_path(raw: str, archive: str) -> str:
    """The safe relative path of an archive entry, or UserError naming it."""
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
    for part in parts:
        try:
            treeformat.check_name(part)
        except treeformat.InvalidTree:
            raise UserError(f"{archive} holds an entry that cannot be stored ({raw}).") from None
    return "/".join(parts)


def _copy(source: IO[bytes], target: str, budget: _Budget, shown: str) -> None:
    if os.path.lexists(target):
        raise UserError(f"the upload holds {shown} twice; nothing was stored.")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "xb") as out:
        while block := source.read(_BLOCK):
            budget.take(len(block))
            out.write(block)


def _unzip(upload: UploadedFile, staging: str, budget: _Budget) -> None:
    try:
        archive = zipfile.ZipFile(upload.file)
    except zipfile.BadZipFile:
        raise UserError(f"{upload.name} is not a readable .zip file; nothing was stored.") from None
    with archive:
        members = archive.infolist()
        # Check every name before writing anything, so a bad entry late in the
        # archive is reported without work wasted on the ones before it.
        paths = [_member_path(info.filename, upload.name) for info in members]
        for info, relpath in zip(members, paths, strict=True):
            mode = info.external_attr >> 16
            if statmod.S_ISLNK(mode):
                raise UserError(
                    f"{upload.name} holds a link ({info.filename}); links cannot be uploaded, "
                    "nothing was stored."
                )
            if not relpath:
                continue
            target = os.path.join(staging, relpath)
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            try:
                with archive.open(info) as source:
                    _copy(source, target, budget, relpath)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as error:
                raise UserError(f"cannot unpack {info.filename} from {upload.name}: {error}.") from None


def _untar(upload: UploadedFile, staging: str, budget: _Budget) -> None:
    try:
        archive = tarfile.open(fileobj=upload.file, mode="r:*")  # noqa: SIM115 (closed below)
    except tarfile.TarError:
        raise UserError(f"{upload.name} is not a readable .tar archive; nothing was stored.") from None
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise UserError(f"{upload.name} is damaged ({error}); nothing was stored.") from None
        paths = [_member_path(member.name, upload.name) for member in members]
        for member, relpath in zip(members, paths, strict=True):
            if member.issym() or member.islnk():
                raise UserError(
                    f"{upload.name} holds a link ({member.name}); links cannot be uploaded, "
                    "nothing was stored."
                )
            if not (member.isfile() or member.isdir()):
                raise UserError(
                    f"{upload.name} holds {member.name}, which is neither a file nor a folder; "
                    "nothing was stored."
                )
            if not relpath:
                continue
            target = os.path.join(staging, relpath)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            source = archive.extractfile(member)
            if source is None:
                continue
            with source:
                _copy(source, target, budget, relpath)


def _store_file(upload: UploadedFile, staging: str, budget: _Budget) -> None:
    name = posixpath.basename((upload.name or "").replace("\\", "/"))
    try:
        treeformat.check_name(name)
    except treeformat.InvalidTree:
        raise UserError(f"{upload.name!r} is not a file name that can be stored.") from None
    target = os.path.join(staging, name)
    temporary = getattr(upload, "temporary_file_path", None)
    if temporary is not None and not os.path.lexists(target):
        # Django already spooled this file to disk: link it instead of copying.
        try:
            os.link(temporary(), target)
            budget.take(upload.size or 0)
            return
        except OSError:
            pass  # another file system: copy below
    upload.seek(0)
    _copy(upload, target, budget, name)


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
) -> PushResult:
    """Store uploaded files as a new version on a branch of a dataset (created at
    its first upload, like a first push). Archives (.zip, .tar, .tar.gz…) are
    unpacked; other files are stored at the top of the version under their names.

    Needs the steward role (and read access to an existing dataset). Raises
    UploadTooLarge past `limit` (default STRATA_UPLOAD_MAX_BYTES) and UserError for
    an unsafe or unreadable archive; in both cases nothing is stored.
    """
    _check_allowed(user, dataset_name)
    if not uploads:
        raise UserError("choose at least one file or archive to upload.")
    limit = upload_limit() if limit is None else limit
    if sum(upload.size or 0 for upload in uploads) > limit:
        raise UploadTooLarge(too_large_message(limit))
    root = os.path.join(settings.STRATA_CACHE_DIR, "uploads")
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="upload-", dir=root)
    try:
        budget = _Budget(limit)
        for upload in uploads:
            if is_archive(upload.name or ""):
                upload.seek(0)
                if (upload.name or "").lower().endswith(".zip"):
                    _unzip(upload, staging, budget)
                else:
                    _untar(upload, staging, budget)
            else:
                _store_file(upload, staging, budget)
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
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
