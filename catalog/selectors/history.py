"""Reads of a branch's history: whether a version is part of it."""

from __future__ import annotations

from django.db import connection

from catalog.errors import NotFound
from catalog.models import Branch, Dataset, Version


def version_on_branch(*, dataset: Dataset, version: Version, branch: str) -> bool:
    """Whether `version` is in the history of `branch` of `dataset`: its head, or an
    ancestor of its head over both parents of every merge — that is, merged into
    it. NotFound for a branch the dataset does not have.

    One recursive query from the head, as ``catalog.services.merges`` walks a
    head's ancestry to find a merge base."""
    row = Branch.objects.filter(dataset=dataset, name=branch).only("head_id").first()
    if row is None:
        raise NotFound(f"dataset {dataset.name} has no branch {branch}.")
    if row.head_id == version.id:
        return True
    if version.dataset_id != dataset.pk:
        return False
    table = Version._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE ancestors(id) AS (
                SELECT id FROM {table} WHERE id = %s
                UNION
                SELECT v.id FROM {table} v
                JOIN {table} child ON child.parent_id = v.id OR child.merge_parent_id = v.id
                JOIN ancestors ON child.id = ancestors.id
            )
            SELECT 1 FROM ancestors WHERE id = %s
            """,
            [row.head_id, version.id],
        )
        return cursor.fetchone() is not None
