"""Listing what a push of a folder (or one file) will store — the one scan that the
server's pushes and the client share.

Every path is checked by the rule all ways into the store share
(``strata_store.paths``). Symbolic links are stored as links, never followed;
one that leads outside the pushed folder, even through other links, is refused,
so a pull can never be led to write outside its destination. Anything that is
not a regular file, a folder or a link is refused with a sentence naming it.
"""

from __future__ import annotations

import os
import stat as statmod
from dataclasses import dataclass, field

from strata_store import paths
from strata_store.hashing import digest_hex


class ScanError(ValueError):
    """The path cannot be pushed as it is; the message says why, in one sentence."""


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
        raise ScanError(f"{path} does not exist.")
    if not os.path.isdir(path):
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            raise ScanError(f"{path} is neither a file nor a folder.")
        try:
            paths.check_path(os.path.basename(real))
        except paths.UnsafePath as error:
            raise ScanError(str(error)) from None
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
            raise ScanError(f"cannot read folder {absolute_dir}: permission denied.") from None
        for entry in entries:
            relpath = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            try:
                paths.check_path(relpath)
                if statmod.S_ISLNK(st.st_mode):
                    result.links[relpath] = paths.local_link_target(root, relpath, os.readlink(entry.path))
                    continue
            except paths.UnsafePath as error:
                raise ScanError(str(error)) from None
            if statmod.S_ISDIR(st.st_mode):
                result.dirs.append(relpath)
                stack.append(relpath)
            elif statmod.S_ISREG(st.st_mode):
                result.files.append(ScannedFile(relpath, entry.path, st, bool(st.st_mode & statmod.S_IXUSR)))
            else:
                raise ScanError(f"{entry.path} is not a regular file, folder or link; remove it.")
    try:
        paths.check_links(result.links)
    except paths.UnsafePath as error:
        raise ScanError(str(error)) from None
    result.files.sort(key=lambda scanned: scanned.relpath)
    return result


def scan_fingerprint(scanned: Scan) -> str:
    """A hash of everything a scan saw: each path with its full stat, each link's
    target, each folder. Equal fingerprints mean an unchanged folder, so a push can
    skip reading it (and a client the server) when the branch still holds the tree
    recorded for this fingerprint."""
    parts = [
        f"f\0{s.relpath}\0{s.stat.st_dev},{s.stat.st_ino},{s.stat.st_size},"
        f"{s.stat.st_mtime_ns},{s.stat.st_ctime_ns},{int(s.executable)}"
        for s in scanned.files
    ]
    parts += [f"l\0{relpath}\0{target}" for relpath, target in sorted(scanned.links.items())]
    parts += [f"d\0{relpath}" for relpath in sorted(scanned.dirs)]
    return digest_hex("\n".join(parts).encode("utf-8", "surrogateescape"))
