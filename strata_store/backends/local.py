"""A local folder as the object store (the embedded default).

Packs are spooled in ``tmp/`` inside the same folder, so that publishing one is a
rename on one filesystem: atomic, and never a copy. ``os.link`` is used instead of
``os.replace`` so that an existing pack is never overwritten (write-once).

Tiers are kept as the same states S3 has, so tiering, restores and their errors
behave alike without S3: a pack's tier is a small file in ``tiers/``; a cold pack
cannot be read until a restore was requested and `restore_seconds` have passed
(AWS quotes 3–5 hours for a standard Glacier retrieval; tests set a second).
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import time
from collections.abc import Iterator

from strata_store.backends import COLD, HOT, TIERS, RestoreState, pack_key
from strata_store.errors import MissingObject, ObjectRestoring, StoreError


class LocalBackend:
    def __init__(self, root: str, *, restore_seconds: float = 4 * 3600) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self.restore_seconds = restore_seconds
        for folder in ("tmp", "packs", "tiers"):
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)

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
        # Durable before it is visible: the bytes, then the name, reach the disk.
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(path, final)
        except FileExistsError:
            # Another push stored a pack of this name first. A pack's name pins its
            # index, not its payload, so compare: bytes a client left there that
            # differ from ours (a forged or half-verified upload) are replaced, or
            # every chunk indexed here would point at them.
            if not filecmp.cmp(path, final, shallow=False):
                replacement = f"{final}.{os.getpid()}.replace"
                os.link(path, replacement)
                os.replace(replacement, final)
        finally:
            os.unlink(path)
        # The rename is durable only once the directory entry is on disk.
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

    def read_range(self, pack_id: str, offset: int, length: int) -> bytes:
        self._check_readable(pack_id)
        try:
            with open(self._path(pack_id), "rb", buffering=0) as handle:
                return os.pread(handle.fileno(), length, offset)
        except FileNotFoundError:
            raise MissingObject("pack", pack_id) from None

    def read_tail(self, pack_id: str, length: int) -> bytes:
        self._check_readable(pack_id)
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

    def promote_pack(self, source_id: str, pack_id: str) -> None:
        final = self._path(pack_id)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            os.replace(self._path(source_id), final)
        except FileNotFoundError:
            raise MissingObject("pack", source_id) from None
        directory_fd = os.open(os.path.dirname(final), os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

    def quarantine_pack(self, pack_id: str) -> str:
        folder = os.path.join(self.root, "quarantine")
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, f"{pack_id}-{int(time.time())}.pack")
        try:
            os.rename(self._path(pack_id), target)
        except FileNotFoundError:
            raise MissingObject("pack", pack_id) from None
        return os.path.relpath(target, self.root)

    def delete_pack(self, pack_id: str) -> None:
        for path in (self._path(pack_id), self._tier_path(pack_id)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    # -- tiers ---------------------------------------------------------------------

    def _tier_path(self, pack_id: str) -> str:
        return os.path.join(self.root, "tiers", f"{pack_id}.json")

    def _tier_state(self, pack_id: str) -> dict:
        try:
            with open(self._tier_path(pack_id)) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {"tier": HOT}

    def _write_tier_state(self, pack_id: str, state: dict) -> None:
        path = self._tier_path(pack_id)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            json.dump(state, handle)
        os.replace(temporary, path)

    def set_tier(self, pack_id: str, tier: str) -> None:
        if tier not in TIERS:
            raise StoreError(f"{tier!r} is not a tier")
        if not os.path.exists(self._path(pack_id)):
            raise MissingObject("pack", pack_id)
        if tier == HOT:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tier_path(pack_id))
        else:
            self._write_tier_state(pack_id, {"tier": tier})

    def tier_of(self, pack_id: str) -> str:
        return self._tier_state(pack_id)["tier"]

    def restore_state(self, pack_id: str) -> RestoreState:
        state = self._tier_state(pack_id)
        if state["tier"] != COLD:
            return RestoreState(readable=True)
        requested = state.get("restore_requested")
        if requested is None:
            return RestoreState(readable=False)
        remaining = requested + self.restore_seconds - time.time()
        if remaining <= 0:
            return RestoreState(readable=True)
        return RestoreState(readable=False, restoring=True, ready_in_seconds=remaining)

    def request_restore(self, pack_id: str) -> RestoreState:
        state = self._tier_state(pack_id)
        if state["tier"] == COLD and state.get("restore_requested") is None:
            state["restore_requested"] = time.time()
            self._write_tier_state(pack_id, state)
        return self.restore_state(pack_id)

    def _check_readable(self, pack_id: str) -> None:
        # Hot packs have no tier file: one failed stat, so reads stay cheap.
        if not os.path.exists(self._tier_path(pack_id)):
            return
        state = self.restore_state(pack_id)
        if not state.readable:
            raise ObjectRestoring(pack_id, state.ready_in_seconds if state.restoring else None)
