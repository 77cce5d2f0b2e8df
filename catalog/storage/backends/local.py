"""A local folder as the object store (the embedded default).

Packs are spooled in ``tmp/`` inside the same folder, so that publishing one is a
rename on one filesystem: atomic, and never a copy. ``os.link`` is used instead of
``os.replace`` so that an existing pack is never overwritten (write-once).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import MissingObject
from . import pack_key


class LocalBackend:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        os.makedirs(os.path.join(self.root, "tmp"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "packs"), exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBackend({self.root!r})"

    def _path(self, pack_id: str) -> str:
        return os.path.join(self.root, pack_key(pack_id))

    def spool_dir(self) -> str:
        return os.path.join(self.root, "tmp")

    def put_pack(self, pack_id: str, path: str) -> None:
        final = self._path(pack_id)
        directory = os.path.dirname(final)
        os.makedirs(directory, exist_ok=True)
        try:
            os.link(path, final)
        except FileExistsError:
            # Same name, same bytes: another push stored this exact pack first.
            pass
        finally:
            os.unlink(path)
        # The rename is durable only once the directory entry is on disk.
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

    def read_range(self, pack_id: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(pack_id), "rb", buffering=0) as handle:
                return os.pread(handle.fileno(), length, offset)
        except FileNotFoundError:
            raise MissingObject("pack", pack_id) from None

    def read_tail(self, pack_id: str, length: int) -> bytes:
        try:
            with open(self._path(pack_id), "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - length))
                return handle.read()
        except FileNotFoundError:
            raise MissingObject("pack", pack_id) from None

    def pack_size(self, pack_id: str) -> int | None:
        try:
            return os.stat(self._path(pack_id)).st_size
        except FileNotFoundError:
            return None

    def list_packs(self) -> Iterator[tuple[str, int]]:
        packs_root = os.path.join(self.root, "packs")
        for fan in sorted(os.listdir(packs_root)):
            fan_dir = os.path.join(packs_root, fan)
            if not os.path.isdir(fan_dir):
                continue
            for entry in sorted(os.scandir(fan_dir), key=lambda e: e.name):
                if entry.name.endswith(".pack"):
                    yield entry.name[: -len(".pack")], entry.stat().st_size

    def delete_pack(self, pack_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(pack_id))
