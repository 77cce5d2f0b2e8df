"""Listing what a push of a folder (or one file) will store, by the server's rules:
every name one safe path segment, links stored as links (relative, pointing inside
the folder), anything else refused with a sentence naming it. The server checks the
list again when it commits; checking here saves a wasted upload.
"""

from __future__ import annotations

import os
import stat as statmod
from dataclasses import dataclass, field

from catalog.storage import tree as treeformat

from .errors import ClientError


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


def _inside(root: str, candidate: str) -> bool:
    return candidate == root or candidate.startswith(root + os.sep)


def _link_target(root: str, link_path: str, relpath: str) -> str:
    target = os.readlink(link_path)
    resolved = os.path.realpath(os.path.join(os.path.dirname(link_path), target))
    if not _inside(root, resolved):
        raise ClientError(
            f"the link {relpath} points outside the pushed folder (to {target}); "
            "replace it with the file it points to, or remove it."
        )
    if os.path.isabs(target):
        target = os.path.relpath(resolved, os.path.dirname(os.path.join(root, relpath)))
    return target


def scan(path: str) -> Scan:
    """What pushing `path` would store."""
    if not os.path.lexists(path):
        raise ClientError(f"{path} does not exist.")
    if not os.path.isdir(path):
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            raise ClientError(f"{path} is neither a file nor a folder.")
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
            try:
                treeformat.check_name(entry.name)
            except treeformat.InvalidTree:
                raise ClientError(f"cannot store the name {entry.name!r} in {absolute_dir}.") from None
            relpath = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            if statmod.S_ISLNK(st.st_mode):
                result.links[relpath] = _link_target(root, entry.path, relpath)
            elif statmod.S_ISDIR(st.st_mode):
                result.dirs.append(relpath)
                stack.append(relpath)
            elif statmod.S_ISREG(st.st_mode):
                result.files.append(ScannedFile(relpath, entry.path, st, bool(st.st_mode & statmod.S_IXUSR)))
            else:
                raise ClientError(f"{entry.path} is not a regular file, folder or link; remove it.")
    result.files.sort(key=lambda scanned: scanned.relpath)
    return result


def scan_fingerprint(scanned: Scan) -> str:
    """A hash of everything a scan saw: each path with its full stat, each link's
    target, each folder. Equal fingerprints mean an unchanged folder (the local
    push's rule too), so a push can skip the server when the branch still holds
    the tree it recorded for this fingerprint."""
    from catalog.storage.hashing import digest_hex

    parts = [
        f"f\0{s.relpath}\0{s.stat.st_dev},{s.stat.st_ino},{s.stat.st_size},"
        f"{s.stat.st_mtime_ns},{s.stat.st_ctime_ns},{int(s.executable)}"
        for s in scanned.files
    ]
    parts += [f"l\0{relpath}\0{target}" for relpath, target in sorted(scanned.links.items())]
    parts += [f"d\0{relpath}" for relpath in sorted(scanned.dirs)]
    return digest_hex("\n".join(parts).encode("utf-8", "surrogateescape"))
