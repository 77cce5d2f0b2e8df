"""Names and numbers a commit is made of: a dataset name, a ref name, a semantic
version, a code reference.

Checked before anything is stored, by every way in (command line, pages, API).
"""

from __future__ import annotations

from catalog.errors import UserError
from catalog.models import DATASET_NAME_RE, REF_NAME_RE, SEMVER_RE


def parse_semver(value: str) -> tuple[int, int, int]:
    match = SEMVER_RE.match(value)
    if not match:
        raise UserError(f"{value!r} is not a semantic version: use MAJOR.MINOR.PATCH, e.g. 1.2.0.")
    return int(match[1]), int(match[2]), int(match[3])


def check_dataset_name(name: str) -> None:
    if not DATASET_NAME_RE.match(name):
        raise UserError(
            f"{name!r} is not a valid dataset name: use letters, digits, '.', '_' and '-',"
            " starting with a letter or digit."
        )


def check_ref_name(name: str, what: str = "branch") -> None:
    if not REF_NAME_RE.match(name) or SEMVER_RE.match(name):
        raise UserError(
            f"{name!r} is not a valid {what} name: use letters, digits, '.', '_', '-' and '/',"
            " and not the form of a semantic version."
        )


def parse_code_ref(code: str) -> tuple[str, str]:
    """'https://git.example.org/team/repo#3f2a9c1' -> (repo, commit or branch).

    The one rule for a code reference, wherever one is given: a dataset version,
    a run, a model version."""
    code = (code or "").strip()
    if not code:
        return "", ""
    repo, sep, commit = code.rpartition("#")
    if not sep:
        return code[:500], ""
    if not commit or not repo:
        raise UserError(f"{code!r} is not a code reference: write REPOSITORY#COMMIT.")
    return repo[:500], commit[:100]
