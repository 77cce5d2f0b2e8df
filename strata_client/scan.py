"""Listing what a push of a folder (or one file) will store, by the server's rules
(``strata_store.paths``, shared by every way into the store): every path safe,
links stored as links (relative, leading inside the folder even through other
links), anything else refused with a sentence naming it. The server checks the list
again when it commits; checking here saves a wasted upload.
"""

from __future__ import annotations

import os
import stat as statmod
from dataclasses import dataclass, field

from strata_client.errors import ClientError
from strata_store import paths


@dataclass(slots=True)
class ScannedFile:
    relpath: str
    abspath: str
    stat: os.stat_result
    executable: bool


@dataclass(slots=True)
class Scan:
    root: str
    files: list[ScannedFile] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # relpath -> target
    dirs: list[str] = field(default_factory=list)  # relpaths; "" is the root


def scan(path: str) -> Scan:
    """What pushing `path` would store."""
    if not os.path.lexists(path):
        raise ClientError(f"{path} does not exist.")
    if not os.path.isdir(path):
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            raise ClientError(f"{path} is neither a file nor a folder.")
        try:
            paths.check_path(os.path.basename(real))
        except paths.UnsafePath as error:
            raise ClientError(str(error)) from None
        st = os.stat(real)
        result = Scan(os.path.dirname(real), dirs=[""])
        result.files.append(ScannedFile(os.path.basename(real), real, st, bool(st.st_mode & statmod.S_IXUSR)))
        return result
    root = os.path.realpath(path)
    result = Scan(root, dirs=[""])
    stack = [""]
    while stack:
        relative_dir = stack.pop()
        absolute_dir = os.path.join(root, relative_dir) if relative_dir else root
        try:
            entries = list(os.scandir(absolute_dir))
        except PermissionError:
            raise ClientError(f"cannot read folder {absolute_dir}: permission denied.") from None
        for entry in entries:
            relpath = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            try:
                paths.check_path(relpath)
                if statmod.S_ISLNK(st.st_mode):
                    result.links[relpath] = paths.local_link_target(root, relpath, os.readlink(entry.path))
                    continue
            except paths.UnsafePath as error:
                raise ClientError(str(error)) from None
            if statmod.S_ISDIR(st.st_mode):
                result.dirs.append(relpath)
                stack.append(relpath)
            elif statmod.S_ISREG(st.st_mode):
                result.files.append(ScannedFile(relpath, entry.path, st, bool(st.st_mode & statmod.S_IXUSR)))
            else:
                raise ClientError(f"{entry.path} is not a regular file, folder or link; remove it.")
    try:
        paths.check_links(result.links)
    except paths.UnsafePath as error:
        raise ClientError(str(error)) from None
    result.files.sort(key=lambda scanned: scanned.relpath)
    return result


def scan_fingerprint(scanned: Scan) -> str:
    """A hash of everything a scan saw: each path with its full stat, each link's
    target, each folder. Equal fingerprints mean an unchanged folder (the local
    push's rule too), so a push can skip the server when the branch still holds
    the tree it recorded for this fingerprint."""
    from strata_store.hashing import digest_hex

    parts = [
        f"f\0{s.relpath}\0{s.stat.st_dev},{s.stat.st_ino},{s.stat.st_size},"
        f"{s.stat.st_mtime_ns},{s.stat.st_ctime_ns},{int(s.executable)}"
        for s in scanned.files
    ]
    parts += [f"l\0{relpath}\0{target}" for relpath, target in sorted(scanned.links.items())]
    parts += [f"d\0{relpath}" for relpath in sorted(scanned.dirs)]
    return digest_hex("\n".join(parts).encode("utf-8", "surrogateescape"))
