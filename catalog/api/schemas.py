"""What the API accepts and answers. Inputs forbid unknown fields, so a misspelt
field is a 422 naming it instead of being silently ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field

HexId = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", min_length=64, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Kind = Literal["file", "executable", "link", "dir"]
Visibility = Literal["public", "restricted"]
StageName = Literal["raw", "cleaned", "labelled", "split", "other"]


class Strict(BaseModel):
    """Input: unknown fields refused. Plain pydantic rather than ninja's Schema, whose
    per-object wrapper costs more than the validation itself on a 10,000-entry list."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Schema):
    error: str


class RestoringOut(Schema):
    """The data is being restored from cold storage: ask again after Retry-After."""

    error: str
    restoring: bool


# -- people ---------------------------------------------------------------------------


class MeOut(Schema):
    username: str
    roles: list[str]


# -- datasets and versions --------------------------------------------------------------


class VersionOut(Schema):
    id: str
    dataset: str
    semver: str
    parent: str | None
    # A merge's second parent: the head of the branch merged in.
    merge_parent: str | None = None
    tree: str
    author: str
    message: str
    created: datetime
    stage: str
    file_count: int
    logical_bytes: int
    new_bytes: int
    stored_bytes: int
    golden: bool
    rolled_back: bool
    # The code that made it: a git repository and a commit or branch ("" when not given).
    code_repo: str = ""
    code_ref: str = ""


class DatasetOut(Schema):
    name: str
    description: str
    visibility: str
    default_branch: str
    keywords: list[str]
    owners: list[str]
    groups: list[str]
    created: datetime
    updated: datetime
    version_count: int
    head: VersionOut | None


class DatasetPage(Schema):
    count: int
    items: list[DatasetOut]


class VersionPage(Schema):
    count: int
    items: list[VersionOut]


class DatasetCreateIn(Strict):
    name: Name
    description: str = Field("", max_length=20_000)
    visibility: Visibility = "public"
    keywords: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=50)


class DatasetUpdateIn(Strict):
    description: str | None = Field(None, max_length=20_000)
    visibility: Visibility | None = None
    keywords: list[Annotated[str, Field(max_length=50)]] | None = Field(None, max_length=50)
    owners: list[Annotated[str, Field(max_length=150)]] | None = Field(None, max_length=200)
    groups: list[Annotated[str, Field(max_length=150)]] | None = Field(None, max_length=200)


class FileOut(Schema):
    path: str
    kind: Kind
    size: int
    digest: str | None = None
    target: str | None = None


class FilePage(Schema):
    count: int
    items: list[FileOut]
    next: str | None


# -- branches and tags ------------------------------------------------------------------


class BranchOut(Schema):
    name: str
    head: str
    tree: str = Field(description="the head's root tree: equal trees mean equal content")
    semver: str
    default: bool
    updated: datetime


class OnBranchOut(Schema):
    """Whether a version is in a branch's history, and whether it was rolled back."""

    version: str
    branch: str
    on_branch: bool = Field(description="the branch's head or an ancestor of it (merged into it)")
    rolled_back: bool


class BranchIn(Strict):
    name: Name
    start: Name | None = Field(None, description="a branch, tag, semantic version or version id")


class TagOut(Schema):
    name: str
    version: str
    semver: str
    created: datetime
    created_by: str


class TagIn(Strict):
    name: Name
    version: Name = Field(description="a branch, tag, semantic version or version id")


# -- pushing ------------------------------------------------------------------------------


class UploadIn(Strict):
    branch: Name | None = None


class UploadOut(Schema):
    id: str
    dataset: str
    branch: str
    head: str | None
    expires: datetime
    pack_size: int
    store: Literal["s3", "local"]
    max_request_bytes: int


class MissingIn(Strict):
    chunks: list[HexId] = Field(default_factory=list, max_length=20_000)
    files: list[HexId] = Field(default_factory=list, max_length=20_000)


class MissingOut(Schema):
    chunks: list[str]
    files: list[str]


class PackIn(Strict):
    pack_id: HexId
    size: int = Field(ge=0, le=2**40)
    md5: str = Field(min_length=1, max_length=64, description="base64 of the pack's MD5")


class TransferOut(Schema):
    url: str
    method: str
    headers: dict[str, str]


class PackTargetOut(Schema):
    pack_id: str
    stored: bool = Field(description="true when the store already has this pack: do not upload it")
    upload: TransferOut | None


class PackRegisterIn(Strict):
    size: int = Field(ge=0, le=2**40)
    chunks: list[HexId] = Field(max_length=100_000)


class PackRegisterOut(Schema):
    pack_id: str
    chunk_count: int


class EntryIn(Strict):
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    kind: Kind
    size: int = Field(0, ge=0, le=2**62)
    digest: HexId | None = None
    chunks: list[HexId] = Field(default_factory=list, max_length=20_000)
    target: Annotated[str, Field(max_length=4096)] | None = None


class ManifestPieceIn(Strict):
    digest: HexId
    size: int = Field(ge=0, le=2**62)
    chunks: list[HexId] = Field(max_length=20_000)


class StageIn(Strict):
    part: int | None = Field(
        None, ge=1, le=10**6, description="number the parts to make a resent part replace itself"
    )
    entries: list[EntryIn] = Field(default_factory=list, max_length=10_000)
    manifests: list[ManifestPieceIn] = Field(
        default_factory=list,
        max_length=100,
        description="chunk lists of files too long for one entry, in pieces joined in order",
    )


class StageOut(Schema):
    part: int
    entries: int


class CommitIn(Strict):
    upload: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    branch: Name | None = None
    parent: HexId | None = Field(
        None,
        description="the head the client saw; the commit fails with 409 if the branch moved "
        "(null: the branch must have no head yet; left out: whatever the head is now)",
    )
    message: str = Field("", max_length=20_000)
    stage: StageName | None = None
    semver: Annotated[str, Field(max_length=40)] | None = None
    code: str = Field(
        "",
        max_length=800,
        description="the code that made the data: REPOSITORY#COMMIT (or #BRANCH), e.g. "
        "https://git.example.org/team/repo#3f2a9c1",
    )
    entries: list[EntryIn] = Field(default_factory=list, max_length=1_000)


class CommitOut(Schema):
    dataset: str
    branch: str
    created: bool
    version: VersionOut
    file_count: int
    logical_bytes: int
    new_bytes: int
    stored_bytes: int


class VerifyingOut(Schema):
    """A commit accepted: a worker verifies the bytes it names, then commits."""

    upload: str
    dataset: str
    branch: str
    state: Literal["verifying"]
    poll: str = Field(description="GET this until `state` is committed (or an error comes back)")


class UploadStateOut(Schema):
    id: str
    dataset: str
    branch: str
    state: Literal["open", "verifying", "committed"]
    commit: CommitOut | None = Field(None, description="the commit's answer, once committed")


# -- pulling -----------------------------------------------------------------------------


class Fast(BaseModel):
    """Output of the large lists (manifests): plain pydantic reading attributes, for
    the same reason as `Strict`."""

    model_config = ConfigDict(from_attributes=True)


class ChunkOut(Fast):
    id: str
    span: int
    offset: int
    stored_length: int
    raw_length: int
    codec: int


class ManifestEntryOut(Fast):
    path: str
    kind: Kind
    size: int = 0
    digest: str | None = None
    target: str | None = None
    chunk_count: int = 0
    chunk_start: int = 0
    chunks: list[ChunkOut] = Field(default_factory=list)


class SpanOut(Fast):
    url: str
    headers: dict[str, str]
    length: int


class ManifestOut(Schema):
    version: VersionOut
    total: int
    entries: list[ManifestEntryOut]
    spans: list[SpanOut]
    next: str | None


class MergeIn(Schema):
    """A merge of branch `source` into `into` (the dataset's default branch if left out)."""

    source: str = Field(min_length=1, max_length=200)
    into: str | None = Field(None, min_length=1, max_length=200)
    strategy: Literal["source", "target"] | None = Field(
        None, description="settle every conflict for one side"
    )
    path_strategies: dict[str, Literal["source", "target"]] = Field(
        default_factory=dict, description="settle the conflicts of one file or folder (by path) for one side"
    )
    key: str | None = Field(None, min_length=1, max_length=200, description="the key column of every table")
    keys: dict[str, str] = Field(default_factory=dict, description="the key column of one table, by path")
    message: str = Field("", max_length=10000)
    dry_run: bool = Field(False, description="work out the outcome and the conflicts; write nothing")


class MergeOut(Schema):
    """A merge: queued or running (`progress` from 0 to 1), or its outcome in `result`:
    files taken, rows merged, conflicts by key and column, and the version made."""

    id: str
    dataset: str
    source: str
    target: str
    dry_run: bool
    state: str
    progress: float
    version: VersionOut | None
    result: dict | None
    error: str
    created: datetime
    updated: datetime
