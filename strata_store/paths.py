"""The one check of paths and links that every way into the store shares.

A version can arrive by a local push, a remote client's commit, an archive uploaded
from the dashboard, or be written out again by a pull. Each used to check paths in
its own way, and the differences were holes: a remote commit judged links by their
text alone, so a chain of links (``d/up -> ..``, then ``esc -> d/up/../etc``) passed
there although the filesystem resolves it outside the folder; a 300-byte name was
stored and then broke every pull of the version. So the rules live here, once:

- a path is relative, '/'-separated, made of names that are each one safe segment
  (not empty, ``.`` or ``..``, no '/' or NUL, at most 255 bytes of UTF-8 — what
  ext4, XFS, APFS and NTFS accept), with no backslash (a Windows client would write
  it as a separator) and at most ``MAX_PATH_BYTES`` in all, leaving room for the
  folder it is written into within the 4096 bytes a Linux path may have;
- a link is kept only if its target, resolved through every other link of the tree
  exactly as the filesystem resolves it, stays inside the tree.

Plain Python, no Django: the command-line client imports it too. Every refusal is an
``UnsafePath`` whose message is one sentence naming the path and what to do.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping

MAX_SEGMENT_BYTES = 255
# Linux refuses paths over 4096 bytes; the destination folder's own path needs room.
MAX_PATH_BYTES = 3072
MAX_LINK_TARGET_BYTES = 4095
# Linux gives up (ELOOP) after following 40 links in one lookup; a tree whose links
# need more cannot be used where it is pulled, so it is refused like a loop.
MAX_LINK_HOPS = 40


class UnsafePath(ValueError):
    """A path or link that cannot be stored or written safely.

    `problem` names the path and what is wrong with it; the message adds what to do,
    so a caller with better advice (a pull, an archive) can build its own sentence.
    """

    def __init__(self, path: str, problem: str, advice: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{problem}; {advice}.")


def shown(path: object, limit: int = 120) -> str:
    """A path as messages quote it: repr'd (NULs and escapes visible) and shortened."""
    text = repr(path)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _byte_length(text: str) -> int | None:
    """Bytes the name takes on disk (undecodable bytes kept by surrogateescape count
    one each); None when it cannot be written at all."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return None


def segment_problem(name: object) -> str | None:
    """Why `name` is not one safe path segment (a tree entry's name), or None.

    Trees check their names with this (``tree.check_name``), so a stored tree and a
    path arriving by any way in obey the same rule.
    """
    if not isinstance(name, str):
        return "is not text"
    if name == "":
        return "has an empty name"
    if name in (".", ".."):
        return f"has a {name!r} name"
    if "/" in name:
        return "has a '/' inside a name"
    if "\0" in name:
        return "holds a NUL character"
    length = _byte_length(name)
    if length is None:
        return "is not valid text"
    if length > MAX_SEGMENT_BYTES:
        return f"has a name of {length} bytes, over the {MAX_SEGMENT_BYTES} a filesystem allows"
    return None


def path_problem(path: object, *, backslash_allowed: bool = False) -> str | None:
    """Why `path` is not a safe relative path, or None (see the module's rules).

    `backslash_allowed` is for reading back trees stored before backslashes were
    refused: on Linux a backslash is an ordinary character of a name.
    """
    if not isinstance(path, str):
        return "is not text"
    if path == "":
        return "is empty"
    if path.startswith("/"):
        return "is absolute"
    if "\0" in path:
        return "holds a NUL character"
    if "\\" in path and not backslash_allowed:
        return "holds a backslash (use '/' between names)"
    length = _byte_length(path)
    if length is not None and length > MAX_PATH_BYTES:
        return f"is {length} bytes long, over the {MAX_PATH_BYTES} allowed"
    for part in path.split("/"):
        problem = segment_problem(part)
        if problem is not None:
            return problem
    return None


def check_path(path: str, *, backslash_allowed: bool = False) -> None:
    """Refuse a path that is not relative, '/'-separated and made of safe names."""
    problem = path_problem(path, backslash_allowed=backslash_allowed)
    if problem is not None:
        raise UnsafePath(
            path,
            f"{shown(path)} is not a safe path: it {problem}",
            "give a relative path inside the folder, or rename the file",
        )


def check_link_target(path: str, target: str) -> None:
    """Refuse a link target that cannot be judged at all: empty, absolute, holding a
    NUL or a backslash, or longer than a link may be. (Where it leads is judged with
    the whole tree, by `check_links`.)"""
    length = _byte_length(target) if isinstance(target, str) else None
    if (
        length is None
        or not target
        or "\0" in target
        or "\\" in target
        or posixpath.isabs(target)
        or length > MAX_LINK_TARGET_BYTES
    ):
        raise UnsafePath(
            path,
            f"the link {path} must point to a relative path inside the folder, not {shown(str(target), 80)}",
            "replace it with the file it points to, or remove it",
        )


def resolve_link(path: str, links: Mapping[str, str]) -> str:
    """Where the link `path` leads, relative to the tree's root ("" is the root).

    Resolves as the filesystem does: name by name from the link's folder; a name
    that is itself a link of the tree is replaced by that link's target, read from
    the link's own folder, so a ``..`` after it climbs from where the link leads,
    not from where its name sits. Names the tree does not hold are taken as folders:
    that only ever refuses more than the filesystem would. Raises UnsafePath when a
    step climbs above the root, or after MAX_LINK_HOPS links (a loop).
    """
    resolved = path.split("/")[:-1]
    pending = list(reversed(links[path].split("/")))
    hops = 1
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise UnsafePath(
                    path,
                    f"the link {path} points outside the folder (to {shown(links[path], 80)})",
                    "replace it with the file it points to, or remove it",
                )
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is None:
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise UnsafePath(
                path,
                f"the link {path} leads into a loop of links (or through more than {MAX_LINK_HOPS})",
                "point it straight at a file or folder, or remove it",
            )
        check_link_target("/".join(resolved), target)
        resolved.pop()  # the link's target is read from the link's own folder
        pending.extend(reversed(target.split("/")))
    return "/".join(resolved)


def check_links(links: Mapping[str, str]) -> None:
    """Refuse a tree any of whose links (path -> target) leads outside it.

    Every link is resolved through the others (`resolve_link`), so a chain that
    escapes only once its links are followed is refused as surely as ``../x``.
    """
    for path, target in links.items():
        check_link_target(path, target)
    for path in links:
        resolve_link(path, links)


def check_tree(paths: Iterable[str], links: Mapping[str, str], *, backslash_allowed: bool = False) -> None:
    """Check every path of a tree (files, folders and links) and every link."""
    for path in paths:
        check_path(path, backslash_allowed=backslash_allowed)
    check_links(links)


def local_link_target(root: str, relpath: str, target: str) -> str:
    """The target to store for the link found at `relpath` in the folder `root`.

    A relative target is stored as it is (`check_links` judges it with the rest of
    the tree). An absolute one is made relative when the filesystem resolves it
    inside `root`, so the pulled copy points inside its own folder; otherwise it is
    refused.
    """
    if not os.path.isabs(target):
        return target
    link_folder = os.path.dirname(os.path.join(root, relpath))
    resolved = os.path.realpath(os.path.join(link_folder, target))
    if resolved != root and not resolved.startswith(root.rstrip(os.sep) + os.sep):
        raise UnsafePath(
            relpath,
            f"the link {relpath} points outside the folder (to {shown(target, 80)})",
            "replace it with the file it points to, or remove it",
        )
    return os.path.relpath(resolved, link_folder)
