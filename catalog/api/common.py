"""Helpers the API's endpoints share: who is asking, and rows as response bodies."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse
from ninja import Router

from catalog import selectors
from catalog.models import Dataset, Version

# One router for every catalog endpoint: Django matches a path once, so a path with
# a GET in one module and a POST in another must share a router.
router = Router()


def user_of(request: HttpRequest):
    """The user the request authenticated as (token or session)."""
    return request.auth  # type: ignore[attr-defined]


def readable_dataset(request: HttpRequest, name: str) -> Dataset:
    """The dataset, or NotFound — also when it is restricted and the user may not read it."""
    return selectors.dataset_get(name, user_of(request))


def version_out(version: Version) -> dict[str, object]:
    return {
        "id": version.id,
        "dataset": version.dataset.name,
        "semver": version.semver,
        "parent": version.parent_id,
        "merge_parent": version.merge_parent_id,
        "tree": version.tree_id,
        "author": version.author,
        "message": version.message,
        "created": version.created,
        "stage": version.stage,
        "file_count": version.file_count,
        "logical_bytes": version.logical_bytes,
        "new_bytes": version.new_bytes,
        "stored_bytes": version.stored_bytes,
        "golden": version.golden,
        "rolled_back": version.rolled_back,
        "code_repo": version.code_repo,
        "code_ref": version.code_ref,
    }


def dataset_out(dataset: Dataset, head: Version | None) -> dict[str, object]:
    """A dataset with its keywords, owners and groups (prefetched by the caller)."""
    return {
        "name": dataset.name,
        "description": dataset.description,
        "visibility": dataset.visibility,
        "default_branch": dataset.default_branch,
        "keywords": sorted(keyword.name for keyword in dataset.keywords.all()),
        "owners": sorted(owner.get_username() for owner in dataset.owners.all()),
        "groups": sorted(group.name for group in dataset.groups.all()),
        "created": dataset.created,
        "updated": dataset.updated,
        "version_count": getattr(dataset, "version_count", 0),
        "head": version_out(head) if head is not None else None,
    }


def local_pack_url(request: HttpRequest):
    """Builds URLs of this server's pack endpoint (local folder stores), on the host
    the client reached."""

    def build(pack_id: str, token: str) -> str:
        path = reverse("api:store_pack", kwargs={"pack_id": pack_id})
        return request.build_absolute_uri(f"{path}?token={token}")

    return build
