"""Check a lock file in CI: is every dataset version it pins merged, and still good?

    from strata_client import Client
    from strata_client.locks import lock_check

    problems = lock_check(client, "strata.lock", target="main")
    for problem in problems:
        print(problem)

A version named in the lock fails the check when it is not in the history of
the target branch of its dataset (neither its head nor an ancestor of it: it
was never merged there), or when it was rolled back. The server answers for
each version (``GET /datasets/{name}/versions/{version}/on/{branch}``); the
lock is read here.

The lock is the YAML that ``strata lock`` writes. The client needs no YAML
library, so it reads the part of YAML such a lock is written in — ``key: value``
lines, a ``datasets:`` list of such mappings, plain or quoted values, comments —
and refuses anything else in one sentence rather than guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from strata_client.errors import ClientError, NotFound

LOCK_FORMAT = "1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(?:[ \t]+(.*))?$")
_NULLS = {"", "~", "null", "Null", "NULL"}


@dataclass(frozen=True, slots=True)
class LockedVersion:
    """One dataset version a lock pins."""

    dataset: str
    version: str
    semver: str = ""
    role: str = ""

    @property
    def label(self) -> str:
        return f"{self.dataset}@{self.semver or self.version[:12]}"


def lock_check(client, lock_path: str, target: str = "main") -> list[str]:
    """The problems of the lock at `lock_path` against branch `target` of each of
    its datasets, one sentence each; empty when every version is fine.

    Raises ClientError when the lock cannot be read or is not a lock (bad input),
    and the client's errors when the server cannot be asked (a bad token, the
    network). A dataset, version or branch the server does not know is a problem."""
    try:
        with open(lock_path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ClientError(f"there is no lock file {lock_path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ClientError(f"cannot read {lock_path} ({error.__class__.__name__}).") from None
    problems: list[str] = []
    for locked in lock_versions(text, name=lock_path):
        try:
            _, answer = client.transport.call(
                "GET", f"/datasets/{locked.dataset}/versions/{locked.version}/on/{target}"
            )
        except NotFound as error:
            problems.append(f"{locked.label} cannot be checked: {error}")
            continue
        if not answer["on_branch"]:
            problems.append(
                f"{locked.label} ({locked.version[:12]}) is not on branch {target} of {locked.dataset}: "
                f"merge it into {target}, or lock a version that is."
            )
        if answer["rolled_back"]:
            problems.append(f"{locked.label} ({locked.version[:12]}) was rolled back: lock another version.")
    return problems


def lock_versions(text: str, *, name: str = "strata.lock") -> list[LockedVersion]:
    """The dataset versions a lock's text pins, in order; ClientError, in one
    sentence, for text that is not such a lock."""
    top, entries = _read(text, name)
    if "strata_lock" not in top:
        raise ClientError(f"{name} is not a strata lock (it has no strata_lock: {LOCK_FORMAT} line).")
    if top["strata_lock"] != LOCK_FORMAT:
        raise ClientError(
            f"{name} is a strata lock of format {top['strata_lock']}; this client reads format {LOCK_FORMAT}."
        )
    if not entries:
        raise ClientError(f"{name} lists no datasets.")
    versions = []
    for number, entry in enumerate(entries, start=1):
        dataset, version = entry.get("dataset") or "", entry.get("version") or ""
        if not dataset:
            raise ClientError(f"{name}, dataset {number} has no dataset name.")
        if not _HEX64.match(version):
            raise ClientError(f"{name}, dataset {number} ({dataset}): version must be 64 hexadecimal digits.")
        versions.append(
            LockedVersion(
                dataset=dataset,
                version=version,
                semver=entry.get("semver") or "",
                role=entry.get("role") or "",
            )
        )
    return versions


def _read(text: str, name: str) -> tuple[dict[str, str | None], list[dict[str, str | None]]]:
    """The top-level values and the `datasets` entries of a lock's text."""
    top: dict[str, str | None] = {}
    entries: list[dict[str, str | None]] = []
    in_datasets = False
    item_indent = -1  # the column of the current entry's keys
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#") or line in ("---", "..."):
            continue
        if "\t" in line[: len(line) - len(stripped)]:
            raise _unreadable(name, number)
        indent = len(line) - len(stripped)
        if indent == 0 and not stripped.startswith("- "):
            key, value = _pair(stripped, name, number)
            if key in top:
                raise ClientError(f"{name} gives {key} twice (line {number}).")
            if key == "datasets":
                if value not in (None, "[]"):
                    raise _unreadable(name, number)
                in_datasets, item_indent = True, -1
            else:
                in_datasets = False
            top[key] = value
            continue
        if not in_datasets:
            raise _unreadable(name, number)
        if stripped.startswith("- "):
            item_indent = indent + 2
            stripped = stripped[2:].lstrip(" ")
            item_indent += len(line) - indent - 2 - len(stripped)
            entries.append({})
        elif indent != item_indent or not entries:
            raise _unreadable(name, number)
        key, value = _pair(stripped, name, number)
        if key in entries[-1]:
            raise ClientError(f"{name} gives {key} twice in dataset {len(entries)} (line {number}).")
        entries[-1][key] = value
    return top, entries


def _pair(text: str, name: str, number: int) -> tuple[str, str | None]:
    match = _KEY.match(text)
    if not match:
        raise _unreadable(name, number)
    return match[1], _scalar(match[2] or "", name, number)


def _scalar(text: str, name: str, number: int) -> str | None:
    """A plain, 'single-quoted' or "double-quoted" value on one line, with an
    optional comment after it; None for YAML's empty and null values."""
    if text.startswith("'"):
        end = 1
        while True:
            end = text.find("'", end)
            if end < 0:
                raise _unreadable(name, number)
            if text[end + 1 : end + 2] == "'":
                end += 2
                continue
            break
        value, rest = text[1:end].replace("''", "'"), text[end + 1 :]
    elif text.startswith('"'):
        match = re.match(r'"((?:[^"\\]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*)"', text)
        if not match:
            raise _unreadable(name, number)
        value, rest = json.loads(match[0]), text[match.end() :]
    else:
        # A plain value ends where a comment starts (a '#' after a space).
        value = re.split(r"[ \t]#", text, maxsplit=1)[0].rstrip()
        if value[:1] in ("[", "{", "&", "*", "!", "|", ">", "%", "@", "`") and value != "[]":
            raise _unreadable(name, number)
        if value.startswith(("- ", "? ")) or ": " in value or value.endswith(":"):
            raise _unreadable(name, number)
        return None if value in _NULLS else value
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise _unreadable(name, number)
    return value


def _unreadable(name: str, number: int) -> ClientError:
    return ClientError(
        f"{name} line {number} is not written as `strata lock` writes a lock; write the lock again with it."
    )
