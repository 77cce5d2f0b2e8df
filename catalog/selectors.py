"""Reads: resolving refs, listing datasets, histories and folders."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, QuerySet

from catalog import permissions
from catalog.models import SEMVER_RE, Branch, Dataset, Tag, Version
from catalog.services.errors import NotFound, UserError
from catalog.services.store import trees_load
from catalog.storage import tree as treeformat

_MIN_PREFIX = 4


def split_ref(spec: str) -> tuple[str, str | None]:
    """'reviews@1.2.0' -> ('reviews', '1.2.0'); 'reviews' -> ('reviews', None)."""
    name, sep, ref = spec.partition("@")
    if sep and not ref:
        raise UserError(f"{spec!r} names no ref after '@': use DATASET@REF.")
    return name, (ref if sep else None)


def dataset_get(name: str, user: permissions.User = None) -> Dataset:
    """The dataset called `name`, if `user` may read it (NotFound otherwise)."""
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        raise NotFound(f"there is no dataset named {name!r}.")
    permissions.require_read(user, dataset)
    return dataset


def resolve_ref(dataset: Dataset, ref: str | None) -> Version:
    """A branch, tag, semantic version or unique id prefix -> the version it names.

    Looked up in that order; the default branch's head when `ref` is None.
    """
    if ref is None:
        ref = dataset.default_branch
    branch = Branch.objects.filter(dataset=dataset, name=ref).select_related("head").first()
    if branch is not None:
        return branch.head
    tag = Tag.objects.filter(dataset=dataset, name=ref).select_related("version").first()
    if tag is not None:
        return tag.version
    match = SEMVER_RE.match(ref)
    if match:
        version = Version.objects.filter(
            dataset=dataset,
            semver_major=int(match[1]),
            semver_minor=int(match[2]),
            semver_patch=int(match[3]),
        ).first()
        if version is not None:
            return version
    lowered = ref.lower()
    if len(lowered) >= _MIN_PREFIX and all(c in "0123456789abcdef" for c in lowered):
        candidates = list(
            Version.objects.filter(dataset=dataset, id__startswith=lowered).values_list("id", flat=True)[:2]
        )
        if len(candidates) == 1:
            return Version.objects.get(id=candidates[0])
        if len(candidates) > 1:
            raise UserError(f"{ref!r} matches several versions of {dataset.name}; give more of the id.")
    raise NotFound(f"{dataset.name} has no branch, tag, version or id {ref!r}.")


def resolve_spec(spec: str, user: permissions.User = None) -> tuple[Dataset, Version]:
    name, ref = split_ref(spec)
    dataset = dataset_get(name, user)
    return dataset, resolve_ref(dataset, ref)


def dataset_list(user: permissions.User = None) -> QuerySet[Dataset]:
    """The datasets `user` may read, with their version counts."""
    return permissions.visible_datasets(user).annotate(version_count=Count("versions")).order_by("name")


def default_heads(datasets: list[Dataset]) -> dict[int, Version]:
    """The head of each dataset's default branch, in one query."""
    heads: dict[int, Version] = {}
    branches = Branch.objects.filter(dataset__in=datasets).select_related("head", "dataset")
    for branch in branches:
        if branch.name == branch.dataset.default_branch:
            heads[branch.dataset_id] = branch.head
    return heads


def version_log(head: Version, limit: int = 1000) -> list[Version]:
    """The first-parent history from `head`, newest first, in two queries."""
    table = Version._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE chain(id, depth) AS (
                SELECT id, 0 FROM {table} WHERE id = %s
                UNION ALL
                SELECT v.parent_id, chain.depth + 1 FROM {table} v
                JOIN chain ON v.id = chain.id
                WHERE v.parent_id IS NOT NULL AND chain.depth < %s
            )
            SELECT id FROM chain ORDER BY depth
            """,
            [head.id, limit - 1],
        )
        ids = [row[0] for row in cursor.fetchall()]
    by_id = Version.objects.in_bulk(ids)
    return [by_id[version_id] for version_id in ids]


@dataclass(frozen=True, slots=True)
class Listing:
    path: str
    entries: list[treeformat.Entry]


def tree_listing(version: Version, path: str = "") -> Listing:
    """The entries of one folder of a version ('' is the root)."""
    parts = [part for part in path.strip("/").split("/") if part]
    tree_id = version.tree_id
    walked: list[str] = []
    for part in parts:
        entries = trees_load([tree_id])[tree_id]
        match = next((entry for entry in entries if entry.name == part), None)
        walked.append(part)
        if match is None:
            raise NotFound(f"{'/'.join(walked)} is not in {version.dataset.name}@{version.semver}.")
        if not match.is_tree:
            return Listing("/".join(walked[:-1]), [match])
        tree_id = match.digest
    return Listing("/".join(walked), trees_load([tree_id])[tree_id])
