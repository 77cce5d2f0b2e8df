"""Reads: resolving refs, listing datasets, histories and folders."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Count,
    F,
    FilteredRelation,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    prefetch_related_objects,
)

from catalog import permissions
from catalog.errors import NotFound, UserError
from catalog.models import SEMVER_RE, Branch, Dataset, Keyword, Tag, Version
from catalog.store import trees_load
from strata_store import tree as treeformat

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


# -- pages of the dashboard -------------------------------------------------------------
#
# Each selector below serves one page and owns its query count: the tests pin them,
# so a page never grows a query per row.

CATALOG_PAGE_SIZE = 25
HISTORY_PAGE_SIZE = 50
CATALOG_SORTS = {"updated": "recently updated", "name": "name", "size": "size"}
_FULL_ID_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class CatalogQuery:
    """What the catalog page was asked for; empty strings mean "any"."""

    text: str = ""
    stage: str = ""
    owner: str = ""
    keyword: str = ""
    golden: bool = False
    sort: str = "updated"
    page: int = 1

    @property
    def filtered(self) -> bool:
        return bool(self.text or self.stage or self.owner or self.keyword or self.golden)


@dataclass(frozen=True, slots=True)
class PageInfo:
    """Where a page sits among its siblings, for the pager."""

    number: int
    count: int
    size: int

    @property
    def num_pages(self) -> int:
        return max(1, -(-self.count // self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def start_index(self) -> int:
        return 0 if self.count == 0 else (self.number - 1) * self.size + 1

    @property
    def end_index(self) -> int:
        return min(self.count, self.number * self.size)

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def _page_info(number: int, count: int, size: int) -> PageInfo:
    last = max(1, -(-count // size))
    return PageInfo(min(max(1, number), last), count, size)


@dataclass(slots=True)
class CatalogRow:
    dataset: Dataset
    head: Version | None
    version_count: int
    keywords: list[str]
    owners: list[str]


@dataclass(slots=True)
class CatalogPage:
    query: CatalogQuery
    rows: list[CatalogRow]
    page: PageInfo
    keyword_options: list[tuple[str, int]]
    owner_options: list[str]


def _catalog_filter(queryset: QuerySet[Dataset], query: CatalogQuery) -> QuerySet[Dataset]:
    """Search and filters. Each test on a related table is a semi-join on dataset
    ids (computed once per query), never a subquery run once per dataset."""
    owners = Dataset.owners.through.objects
    keywords = Dataset.keywords.through.objects
    for term in query.text.split()[:8]:
        queryset = queryset.filter(
            Q(name__icontains=term)
            | Q(description__icontains=term)
            | Q(pk__in=keywords.filter(keyword__name__icontains=term).values("dataset_id"))
            | Q(pk__in=owners.filter(user__username__icontains=term).values("dataset_id"))
        )
    if query.owner:
        queryset = queryset.filter(pk__in=owners.filter(user__username=query.owner).values("dataset_id"))
    if query.keyword:
        queryset = queryset.filter(pk__in=keywords.filter(keyword__name=query.keyword).values("dataset_id"))
    if query.golden:
        queryset = queryset.filter(pk__in=Version.objects.filter(golden=True).values("dataset_id"))
    if query.stage:
        heads = Branch.objects.filter(name=F("dataset__default_branch"), head__stage=query.stage)
        queryset = queryset.filter(pk__in=heads.values("dataset_id"))
    return queryset


FILTER_OPTIONS_SECONDS = 120


def _filter_options(user: permissions.User, visible: QuerySet[Dataset]) -> tuple[list, list]:
    """The most used keywords and the owners among the datasets `user` can read.

    Counting them means a pass over every readable dataset, which a catalog of
    10,000 datasets feels on every keystroke of a search; so they are kept for two
    minutes per user (a keyword added meanwhile shows up in the menu a little later).
    """
    key = f"strata:catalog-options:{getattr(user, 'pk', None)}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    keyword_options = list(
        Keyword.objects.filter(datasets__in=visible.values("pk"))
        .values_list("name")
        .annotate(count=Count("datasets"))
        .order_by("-count", "name")[:40]
    )
    owner_options = list(
        get_user_model()
        .objects.filter(owned_datasets__in=visible.values("pk"))
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()[:200]
    )
    cache.set(key, (keyword_options, owner_options), FILTER_OPTIONS_SECONDS)
    return keyword_options, owner_options


def catalog_page(*, user: permissions.User, query: CatalogQuery) -> CatalogPage:
    """One page of the catalog: the readable datasets matching `query`, sorted, with
    each one's head, version count, keywords and owners, the number of matches and
    the choices for the owner and keyword filters (cached). Eight queries at most,
    whatever the number of datasets."""
    visible = permissions.visible_datasets(user)
    matching = _catalog_filter(visible, query)

    if query.sort == "name":
        ordered = matching.order_by("name")
    elif query.sort == "size":
        # A left join on the default branch (not a subquery per dataset): one hash
        # join over the heads, and datasets with no version yet sort last.
        ordered = matching.annotate(
            head_branch=FilteredRelation("branches", condition=Q(branches__name=F("default_branch")))
        ).order_by(F("head_branch__head__logical_bytes").desc(nulls_last=True), "name")
    else:
        ordered = matching.order_by("-updated", "name")
    page = _page_info(query.page, matching.count(), CATALOG_PAGE_SIZE)
    datasets = list(ordered[page.offset : page.offset + page.size])
    prefetch_related_objects(
        datasets,
        Prefetch("keywords", queryset=Keyword.objects.only("name")),
        Prefetch("owners", queryset=get_user_model().objects.only("username")),
    )
    ids = [dataset.pk for dataset in datasets]
    heads = {
        branch.dataset_id: branch.head
        for branch in Branch.objects.filter(dataset_id__in=ids, name=F("dataset__default_branch"))
        .select_related("head")
        .defer("head__message", "head__rolled_back_reason")
    }
    counts = dict(
        Version.objects.filter(dataset_id__in=ids)
        .order_by()
        .values_list("dataset_id")
        .annotate(count=Count("pk"))
    )
    rows = [
        CatalogRow(
            dataset=dataset,
            head=heads.get(dataset.pk),
            version_count=counts.get(dataset.pk, 0),
            keywords=[keyword.name for keyword in dataset.keywords.all()],
            owners=[owner.get_username() for owner in dataset.owners.all()],
        )
        for dataset in datasets
    ]
    keyword_options, owner_options = _filter_options(user, visible)
    if query.keyword and query.keyword not in {name for name, _ in keyword_options}:
        keyword_options = [*keyword_options, (query.keyword, 0)]
    return CatalogPage(query, rows, page, keyword_options, owner_options)


def version_get(dataset: Dataset, ref: str) -> Version:
    """The version of `dataset` that a page's address names: a semantic version or a
    full id in one query; anything else (branch, tag, id prefix) as `resolve_ref`."""
    match = SEMVER_RE.match(ref)
    if match:
        version = (
            Version.objects.filter(
                dataset=dataset,
                semver_major=int(match[1]),
                semver_minor=int(match[2]),
                semver_patch=int(match[3]),
            )
            .select_related("parent", "merge_parent")
            .first()
        )
        if version is None:
            raise NotFound(f"{dataset.name} has no version {ref}.")
        return version
    if _FULL_ID_RE.match(ref):
        version = (
            Version.objects.filter(dataset=dataset, id=ref).select_related("parent", "merge_parent").first()
        )
        if version is None:
            raise NotFound(f"{dataset.name} has no version with the id {ref[:12]}….")
        return version
    return resolve_ref(dataset, ref)


@dataclass(slots=True)
class HistoryRow:
    version: Version
    branches: list[str]
    tags: list[str]

    @property
    def status(self) -> str:
        if self.version.rolled_back:
            return "rolled back"
        if self.version.golden:
            return "golden"
        return "active"


@dataclass(slots=True)
class DatasetOverview:
    dataset: Dataset
    head: Version | None
    branches: list[Branch]
    tags: list[Tag]
    history: list[HistoryRow]
    page: PageInfo
    version_count: int
    stored_bytes: int
    owners: list[str]
    keywords: list[str]
    groups: list[str]
    can_write: bool


def dataset_overview(*, user: permissions.User, name: str, page: int = 1) -> DatasetOverview:
    """Everything the dataset page shows: what is said about the dataset, its
    branches and tags, the head of its default branch and one page of its history
    (every version, newest first), in a fixed number of queries."""
    dataset = dataset_get(name, user)
    prefetch_related_objects(
        [dataset],
        Prefetch("keywords", queryset=Keyword.objects.only("name")),
        Prefetch("owners", queryset=get_user_model().objects.only("username")),
        "groups",
    )
    branches = list(
        Branch.objects.filter(dataset=dataset).select_related("head").defer("head__rolled_back_reason")
    )
    tags = list(Tag.objects.filter(dataset=dataset).select_related("version").only("name", "version__semver"))
    head = next((branch.head for branch in branches if branch.name == dataset.default_branch), None)
    totals = Version.objects.filter(dataset=dataset).aggregate(count=Count("pk"), stored=Sum("stored_bytes"))
    info = _page_info(page, totals["count"], HISTORY_PAGE_SIZE)
    # A merge names its two parents: fetched with it, not one query per row.
    versions = list(
        Version.objects.filter(dataset=dataset)
        .select_related("parent", "merge_parent")
        .order_by("-created")[info.offset : info.offset + info.size]
    )
    branch_names: dict[str, list[str]] = {}
    for branch in branches:
        branch_names.setdefault(branch.head_id, []).append(branch.name)
    tag_names: dict[str, list[str]] = {}
    for tag in tags:
        tag_names.setdefault(tag.version_id, []).append(tag.name)
    history = [
        HistoryRow(version, branch_names.get(version.id, []), tag_names.get(version.id, []))
        for version in versions
    ]
    return DatasetOverview(
        dataset=dataset,
        head=head,
        branches=branches,
        tags=tags,
        history=history,
        page=info,
        version_count=totals["count"],
        stored_bytes=totals["stored"] or 0,
        owners=[owner.get_username() for owner in dataset.owners.all()],
        keywords=[keyword.name for keyword in dataset.keywords.all()],
        groups=[group.name for group in dataset.groups.all()],
        can_write=can_write(user, dataset),
    )


def can_write(user: permissions.User, dataset: Dataset) -> bool:
    """Whether to offer `user` the buttons that change `dataset` (the services
    decide again when the button is pressed)."""
    try:
        permissions.require_write(user, dataset)
    except UserError:
        return False
    return True


@dataclass(slots=True)
class VersionOverview:
    dataset: Dataset
    version: Version
    listing: Listing
    crumbs: list[tuple[str, str]]
    branches: list[str]
    tags: list[str]
    file_path: str  # set when the path named a file rather than a folder


def version_overview(*, user: permissions.User, name: str, ref: str, path: str = "") -> VersionOverview:
    """One folder of a version (or the folder of one file), with the names that
    point at the version. NotFound for a path that is not in it."""
    dataset = dataset_get(name, user)
    version = version_get(dataset, ref)
    clean = "/".join(part for part in path.strip("/").split("/") if part)
    try:
        listing = tree_listing(version, path)
    except NotFound:
        # Name the whole path asked for, not only its first missing folder.
        raise NotFound(f"{clean} is not in {dataset.name}@{version.semver}.") from None
    file_path = clean if clean and clean != listing.path else ""
    parts = [part for part in listing.path.split("/") if part]
    crumbs = [(part, "/".join(parts[: index + 1])) for index, part in enumerate(parts)]
    branches = list(Branch.objects.filter(dataset=dataset, head=version).values_list("name", flat=True))
    tags = list(Tag.objects.filter(dataset=dataset, version=version).values_list("name", flat=True))
    return VersionOverview(dataset, version, listing, crumbs, branches, tags, file_path)


def version_choices(dataset: Dataset, limit: int = 200) -> list[Version]:
    """The newest versions of a dataset, for the compare page's pickers."""
    return list(
        Version.objects.filter(dataset=dataset)
        .order_by("-created")
        .only("id", "semver", "created", "message", "stage")[:limit]
    )


def upload_choices(dataset: Dataset) -> list[str]:
    """The branch names an upload may go to, the default one first."""
    names = list(Branch.objects.filter(dataset=dataset).values_list("name", flat=True))
    names.sort(key=lambda branch: (branch != dataset.default_branch, branch))
    return names
