"""Endpoints for reading and managing datasets, versions, branches and tags.

Each endpoint parses its input, calls one service or read, and shapes the answer.
Who may do what is decided by the services (``catalog.permissions``): a dataset the
user may not read answers 404 as if it did not exist; a write the user may not make
on a dataset they can read answers 403.
"""

from __future__ import annotations

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Header, Query, Status

from catalog import permissions
from catalog.api import reads
from catalog.api.common import dataset_out, readable_dataset, router, user_of, version_out
from catalog.api.idempotency import run_idempotent
from catalog.api.schemas import (
    BranchIn,
    BranchOut,
    DatasetCreateIn,
    DatasetOut,
    DatasetPage,
    DatasetUpdateIn,
    ErrorOut,
    FilePage,
    MeOut,
    OnBranchOut,
    TagIn,
    TagOut,
    VersionOut,
    VersionPage,
)
from catalog.selectors.exports import file_stream, tar_stream
from catalog.selectors.history import version_on_branch
from catalog.services.datasets import dataset_create, dataset_update
from catalog.services.refs import branch_create, branch_delete, tag_create

TAGS = ["datasets"]

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
READ_ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut}
IDEMPOTENCY = Header(
    None,
    alias="Idempotency-Key",
    description="retrying with the same key returns the first answer instead of doing the work twice",
    max_length=200,
)


@router.get("/me", response={200: MeOut, **READ_ERRORS}, tags=["people"])
def me(request: HttpRequest):
    """Who the token or session belongs to, and their roles."""
    user = user_of(request)
    return {"username": user.get_username(), "roles": sorted(permissions.roles_of(user))}


@router.get("/datasets", response={200: DatasetPage, **READ_ERRORS}, tags=TAGS)
def list_datasets(
    request: HttpRequest,
    q: str = Query("", max_length=200, description="matches name, description, keywords and owners"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
):
    """The datasets you may read, by name, with the head of each default branch."""
    total, page = reads.dataset_search(user=user_of(request), query=q.strip(), limit=limit, offset=offset)
    heads = reads.dataset_heads(page)
    return {"count": total, "items": [dataset_out(dataset, heads.get(dataset.pk)) for dataset in page]}


@router.post("/datasets", response={201: DatasetOut, **ERRORS}, tags=TAGS)
def create_dataset(request: HttpRequest, payload: DatasetCreateIn, idempotency_key: str | None = IDEMPOTENCY):
    """Create an empty dataset (stewards). Its first push makes its first version."""

    def work():
        dataset = dataset_create(
            user=user_of(request),
            name=payload.name,
            description=payload.description,
            visibility=payload.visibility,
            keywords=payload.keywords,
        )
        return 201, dataset_out(reads.dataset_detail(dataset), None)

    return run_idempotent(request, DatasetOut, work)


@router.get("/datasets/{name}", response={200: DatasetOut, **READ_ERRORS}, tags=TAGS)
def get_dataset(request: HttpRequest, name: str):
    dataset = readable_dataset(request, name)
    heads = reads.dataset_heads([dataset])
    return dataset_out(reads.dataset_detail(dataset), heads.get(dataset.pk))


@router.patch("/datasets/{name}", response={200: DatasetOut, **ERRORS}, tags=TAGS)
def update_dataset(request: HttpRequest, name: str, payload: DatasetUpdateIn):
    """Change what is said about a dataset (stewards): fields left out are kept."""
    dataset = readable_dataset(request, name)
    dataset = dataset_update(
        user=user_of(request),
        dataset=dataset,
        description=payload.description,
        visibility=payload.visibility,
        keywords=payload.keywords,
        owners=payload.owners,
        groups=payload.groups,
    )
    heads = reads.dataset_heads([dataset])
    return dataset_out(reads.dataset_detail(dataset), heads.get(dataset.pk))


# -- versions ------------------------------------------------------------------------------


@router.get("/datasets/{name}/versions", response={200: VersionPage, **READ_ERRORS}, tags=["versions"])
def list_versions(
    request: HttpRequest,
    name: str,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
):
    """Every version of the dataset, newest first."""
    dataset = readable_dataset(request, name)
    total, page = reads.version_page(dataset, limit=limit, offset=offset)
    return {"count": total, "items": [version_out(version) for version in page]}


@router.get("/datasets/{name}/resolve", response={200: VersionOut, **READ_ERRORS}, tags=["versions"])
def resolve(
    request: HttpRequest,
    name: str,
    ref: str | None = Query(
        None,
        max_length=200,
        description="branch, tag, semantic version or id prefix; default branch if left out",
    ),
):
    """The version a ref names (use this for branch names with '/')."""
    dataset = readable_dataset(request, name)
    if ref is None:
        ref = dataset.default_branch
    return version_out(reads.version_in(dataset, ref))


@router.get(
    "/datasets/{name}/versions/{version}", response={200: VersionOut, **READ_ERRORS}, tags=["versions"]
)
def get_version(request: HttpRequest, name: str, version: str):
    """A version, by id (or unique prefix), semantic version, tag or branch."""
    dataset = readable_dataset(request, name)
    return version_out(reads.version_in(dataset, version))


@router.get(
    "/datasets/{name}/versions/{version}/on/{path:branch}",
    response={200: OnBranchOut, **READ_ERRORS},
    tags=["versions"],
)
def on_branch(request: HttpRequest, name: str, version: str, branch: str):
    """Whether a version is in a branch's history — its head, or an ancestor of
    it over both parents of merges — and whether it was rolled back. A CI job
    checks a lock's versions with it (`strata-client lock-check`)."""
    dataset = readable_dataset(request, name)
    found = reads.version_in(dataset, version)
    return {
        "version": found.id,
        "branch": branch,
        "on_branch": version_on_branch(dataset=dataset, version=found, branch=branch),
        "rolled_back": found.rolled_back,
    }


@router.get(
    "/datasets/{name}/versions/{version}/files", response={200: FilePage, **READ_ERRORS}, tags=["versions"]
)
def list_files(
    request: HttpRequest,
    name: str,
    version: str,
    path: str = Query("", max_length=4096, description="a folder to list below (default: everything)"),
    after: str | None = Query(None, max_length=4096, description="the last path of the previous page"),
    limit: int = Query(1000, ge=1, le=10_000),
):
    """Files and links of a version, in path order, a page at a time."""
    dataset = readable_dataset(request, name)
    found = reads.version_in(dataset, version)
    total, page, next_path = reads.file_page(found, under=path, after=after, limit=limit)
    items = []
    for entry_path, entry in page:
        item = {"path": entry_path, "kind": reads.KIND_NAMES[entry.kind], "size": entry.size}
        if entry.kind == "l":
            item["target"] = entry.digest
        else:
            item["digest"] = entry.digest
        items.append(item)
    return {"count": total, "items": items, "next": next_path}


@router.get(
    "/datasets/{name}/versions/{version}/files/{path:file_path}",
    response={200: None, **READ_ERRORS, 502: ErrorOut},
    tags=["versions"],
    openapi_extra={
        "responses": {"200": {"description": "the file's bytes", "content": {"application/octet-stream": {}}}}
    },
)
def download_file(request: HttpRequest, name: str, version: str, file_path: str):
    """One file's bytes, every chunk verified as it is read."""
    dataset = readable_dataset(request, name)
    found = reads.version_in(dataset, version)
    stream = file_stream(found, file_path)
    response = StreamingHttpResponse(stream.chunks, content_type="application/octet-stream")
    response["Content-Length"] = str(stream.entry.size)
    response["Content-Disposition"] = _attachment(file_path.rsplit("/", 1)[-1])
    response["ETag"] = f'"{stream.entry.digest}"'
    return response


@router.get(
    "/datasets/{name}/versions/{version}/tar",
    response={200: None, **READ_ERRORS, 502: ErrorOut},
    tags=["versions"],
    openapi_extra={
        "responses": {"200": {"description": "an uncompressed tar", "content": {"application/x-tar": {}}}}
    },
)
def download_tar(request: HttpRequest, name: str, version: str):
    """The whole version as a tar, streamed as it is read (memory stays flat)."""
    dataset = readable_dataset(request, name)
    found = reads.version_in(dataset, version)
    response = StreamingHttpResponse(tar_stream(found), content_type="application/x-tar")
    response["Content-Disposition"] = _attachment(f"{dataset.name}-{found.semver}.tar")
    return response


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    return f"attachment; filename*=UTF-8''{quote(filename)}"


# -- branches and tags ------------------------------------------------------------------


def _branch_out(branch, dataset) -> dict[str, object]:
    return {
        "name": branch.name,
        "head": branch.head_id,
        "tree": branch.head.tree_id,
        "semver": branch.head.semver,
        "default": branch.name == dataset.default_branch,
        "updated": branch.updated,
    }


@router.get("/datasets/{name}/branches", response={200: list[BranchOut], **READ_ERRORS}, tags=["refs"])
def list_branches(request: HttpRequest, name: str):
    dataset = readable_dataset(request, name)
    return [_branch_out(branch, dataset) for branch in reads.branches_of(dataset)]


@router.post("/datasets/{name}/branches", response={201: BranchOut, **ERRORS}, tags=["refs"])
def create_branch(
    request: HttpRequest, name: str, payload: BranchIn, idempotency_key: str | None = IDEMPOTENCY
):
    """Create a branch at a version (default: the head of the default branch)."""
    dataset = readable_dataset(request, name)

    def work():
        start = reads.version_in(dataset, payload.start or dataset.default_branch)
        branch = branch_create(user=user_of(request), dataset=dataset, name=payload.name, start=start)
        return 201, _branch_out(branch, dataset)

    return run_idempotent(request, BranchOut, work)


@router.delete("/datasets/{name}/branches/{path:branch}", response={204: None, **ERRORS}, tags=["refs"])
def delete_branch(request: HttpRequest, name: str, branch: str):
    """Delete a branch other than the default one; its versions stay."""
    dataset = readable_dataset(request, name)
    branch_delete(user=user_of(request), dataset=dataset, name=branch)
    return Status(204, None)


@router.get("/datasets/{name}/tags", response={200: list[TagOut], **READ_ERRORS}, tags=["refs"])
def list_tags(request: HttpRequest, name: str):
    dataset = readable_dataset(request, name)
    return [
        {
            "name": tag.name,
            "version": tag.version_id,
            "semver": tag.version.semver,
            "created": tag.created,
            "created_by": tag.created_by,
        }
        for tag in reads.tags_of(dataset)
    ]


@router.post("/datasets/{name}/tags", response={201: TagOut, **ERRORS}, tags=["refs"])
def create_tag(request: HttpRequest, name: str, payload: TagIn, idempotency_key: str | None = IDEMPOTENCY):
    """Give a version a fixed name. Tags never move."""
    dataset = readable_dataset(request, name)

    def work():
        version = reads.version_in(dataset, payload.version)
        tag = tag_create(user=user_of(request), dataset=dataset, name=payload.name, version=version)
        return 201, {
            "name": tag.name,
            "version": version.id,
            "semver": version.semver,
            "created": tag.created,
            "created_by": tag.created_by,
        }

    return run_idempotent(request, TagOut, work)
