"""What changed between two versions: files, folders, tables and labels.

The same analysis as `strata diff` and the compare page (``catalog.selectors.changes``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query

from catalog.api import reads
from catalog.api.common import readable_dataset, router
from catalog.api.schemas import ErrorOut
from catalog.errors import UserError
from catalog.selectors.changes import change_report

READ_ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut}
# Tables larger than this are listed with an error instead of being read in a request.
API_TABLE_BYTES = 256 * 1024 * 1024


@router.get("/datasets/{name}/diff", response={200: dict[str, Any], **READ_ERRORS}, tags=["versions"])
def diff(
    request: HttpRequest,
    name: str,
    a: str = Query(..., max_length=200, description="the older version: semver, tag, branch or id prefix"),
    b: str = Query(..., max_length=200, description="the newer version"),
    key: str | None = Query(None, max_length=200, description="key column for row diffs (default: detected)"),
    label: str | None = Query(None, max_length=200, description="label column (default: detected)"),
):
    """Files added, removed and modified; per folder; each changed table's schema,
    rows and label shift; and the semantic-version bump the change deserves."""
    dataset = readable_dataset(request, name)
    old, new = reads.version_in(dataset, a), reads.version_in(dataset, b)
    report = change_report(old, new, key=key, label=label, max_table_bytes=API_TABLE_BYTES, max_tables=20)
    if key and report.tables and all(t.error and f"key column {key!r}" in t.error for t in report.tables):
        raise UserError(f"the key column {key!r} is in none of the changed tables.")
    return report.as_dict()
