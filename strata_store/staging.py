"""All-or-nothing writes of a folder: files are assembled in a staging folder beside
(or inside) the destination, and moved into place only once every byte is verified.

Shared by `strata pull`, the Python client's pull and `strata reproduce`; plain
Python, no Django. A destination that cannot take the files raises
DestinationError with one sentence, before anything is written; so does a tree that
could not be written safely (`check_tree`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping

from strata_store import paths


class DestinationError(ValueError):
    """The destination cannot take the files; the message says why."""


def check_tree(entry_paths: Iterable[str], links: Mapping[str, str]) -> None:
    """Refuse a version's tree before anything is written for it: a path the
    filesystem cannot hold (a name over 255 bytes would fail half-way through the
    pull) or a link leading outside the folder, through other links or not. Raises
    ``paths.UnsafePath``, whose `problem` names the entry.

    The rule is the one every way into the store checks (``strata_store.paths``),
    except that a backslash is let through: versions stored before it was refused
    hold it as an ordinary character of a name.
    """
    paths.check_tree(entry_paths, links, backslash_allowed=True)


def staging_for(dest: str, *, force: bool, verb: str = "pull") -> tuple[str, bool]:
    """Check `dest` and make a staging folder on the same file system (so the final
    moves are renames). Returns (staging, whether dest already existed).

    `dest` must be absent (its parent must exist) or an empty folder; with
    `force`, a folder that holds files, whose same-named entries are replaced.
    """
    dest = os.path.abspath(dest)
    if os.path.lexists(dest):
        if not os.path.isdir(dest) or os.path.islink(dest):
            raise DestinationError(f"{dest} exists and is not a folder.")
        if not force and os.listdir(dest):
            raise DestinationError(f"{dest} is not empty; {verb} into an empty folder, or pass --force.")
        parent, existed = dest, True
    else:
        parent, existed = os.path.dirname(dest), False
        if not os.path.isdir(parent):
            raise DestinationError(f"cannot write to {dest}: its parent folder does not exist.")
    try:
        staging = tempfile.mkdtemp(prefix=f".strata-{verb}-", dir=parent)
    except OSError as error:
        raise DestinationError(f"cannot write to {dest}: {(error.strerror or str(error)).lower()}.") from None
    # mkdtemp makes a private folder; what lands in dest gets the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging, existed


def move_into(staging: str, dest: str) -> None:
    """Move staged entries into an existing `dest`, replacing entries of the same name."""
    for name in os.listdir(staging):
        source, target = os.path.join(staging, name), os.path.join(dest, name)
        source_is_dir = os.path.isdir(source) and not os.path.islink(source)
        if source_is_dir and os.path.isdir(target) and not os.path.islink(target):
            move_into(source, target)
        else:
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif source_is_dir and os.path.lexists(target):
                # A file or link where the version has a folder: rename cannot
                # replace it with a folder, so it goes first.
                os.unlink(target)
            os.replace(source, target)


def publish(staging: str, dest: str, existed: bool) -> None:
    """Put the verified staging folder in place: renamed to `dest`, or moved into
    the folder that was there."""
    if existed:
        move_into(staging, os.path.abspath(dest))
        shutil.rmtree(staging)  # only emptied folders are left in it
    else:
        os.rename(staging, os.path.abspath(dest))
