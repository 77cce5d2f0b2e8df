"""Checking out the code a lock names, in a git repository already on this machine.

A reproduction may run where there is no network, so Strata fetches no code: it
detaches the HEAD of a clone the user points at (``strata reproduce --code-dir
DIR``) at the commit the lock records for its model. ``code_checkout_check`` says,
before any data is written, whether that can be done — DIR is the top folder of
a git work tree, it holds the commit, and it has no uncommitted changes a
checkout could overwrite — and ``code_checkout`` does it once the data is in
place.
"""

from __future__ import annotations

import os
import subprocess

from catalog.errors import UserError
from catalog.services.validation import parse_code_ref

_GIT_SECONDS = 120


def _git(code_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run git in `code_dir`, never asking for a password (nothing here goes out)."""
    try:
        return subprocess.run(
            ["git", "-C", code_dir, *args],
            capture_output=True,
            text=True,
            timeout=_GIT_SECONDS,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise UserError("git is not installed here, so --code-dir cannot check out the code.") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"git did not answer within {_GIT_SECONDS} s in {code_dir}.") from None


def code_checkout_check(*, code_dir: str, code: str) -> str:
    """The full id of the commit `code` (REPOSITORY#COMMIT) names in the clone at
    `code_dir`, after checking a checkout there would succeed; UserError, in one
    sentence, otherwise. Reads only."""
    repo, ref = parse_code_ref(code)
    if not ref:
        raise UserError(f"the code reference {code} names no commit to check out; nothing was written.")
    if ref.startswith("-"):
        raise UserError(f"{ref!r} is not a commit git can check out; nothing was written.")
    clone_first = f"clone {repo} there first, then run again; nothing was written."
    if not os.path.isdir(code_dir):
        raise UserError(f"{code_dir} is not a folder: {clone_first}")
    top = _git(code_dir, "rev-parse", "--show-toplevel")
    if top.returncode != 0 or os.path.realpath(top.stdout.strip()) != os.path.realpath(code_dir):
        raise UserError(f"{code_dir} is not a git repository: {clone_first}")
    found = _git(code_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if found.returncode != 0:
        raise UserError(
            f"the git repository {code_dir} does not hold commit {ref} of {repo}: fetch it there first, "
            "then run again; nothing was written."
        )
    changes = _git(code_dir, "status", "--porcelain", "--untracked-files=no")
    if changes.returncode != 0 or changes.stdout.strip():
        raise UserError(
            f"the git repository {code_dir} has uncommitted changes a checkout could overwrite: "
            "commit or stash them first; nothing was written."
        )
    return found.stdout.strip()


def code_checkout(*, code_dir: str, commit: str) -> None:
    """Detach the HEAD of the clone at `code_dir` at `commit` (a full id checked
    by ``code_checkout_check``)."""
    done = _git(code_dir, "checkout", "--quiet", "--detach", commit)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise UserError(f"git could not check out {commit[:12]} in {code_dir}: {reason}")
