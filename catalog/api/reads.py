"""Reads the API needs beyond the shared selectors: a searchable, paged dataset list
with a fixed number of queries, listings of a version's entries by path, and the
pull manifest (entries with the exact pack ranges their chunks sit in)."""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from catalog import permissions
from catalog.errors import IntegrityFailure, NotFound, UserError
from catalog.hooks import store_transferred
from catalog.models import Branch, Dataset, Version
from catalog.selectors import resolve_ref
from catalog.services.pull import check_restored
from catalog.services.remote import KIND_NAMES, MAX_SPAN_BYTES, LocalUrl, Transfer, span_transfer
from catalog.store import DatabaseChunkIndex, file_chunks, trees_load, walk_tree
from strata_store import tree as treeformat

# A manifest page lists at most this many chunks, so a page stays a few MB even
# when one file has millions of chunks (its list then continues on the next page).
MAX_PAGE_CHUNKS = 20_000


def dataset_search(
    *, user: permissions.User, query: str, limit: int, offset: int
) -> tuple[int, list[Dataset]]:
    """The datasets `user` may read whose name, description, keywords or owners
    match `query`, by name; with keywords, owners, groups and version counts loaded
    in a fixed number of queries whatever the page size."""
    visible = permissions.visible_datasets(user)
    if query:
        visible = visible.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(keywords__name__icontains=query)
            | Q(owners__username__icontains=query)
        )
    # Filtering through joins repeats rows; select by id so counts are not inflated.
    matching: QuerySet[Dataset] = Dataset.objects.filter(pk__in=visible.values("pk"))
    total = matching.count()
    page: list[Dataset] = list(
        matching.annotate(version_count=Count("versions"))
        .order_by("name")
        .prefetch_related("keywords", "owners", "groups")[offset : offset + limit]
    )
    return total, page


def dataset_heads(datasets: list[Dataset]) -> dict[int, Version]:
    """The head of each dataset's default branch, in one query."""
    heads: dict[int, Version] = {}
    rows = Branch.objects.filter(dataset__in=datasets).select_related("head", "dataset")
    for branch in rows:
        if branch.name == branch.dataset.default_branch:
            heads[branch.dataset_id] = branch.head
    return heads


def dataset_detail(dataset: Dataset) -> Dataset:
    """`dataset` with what DatasetOut shows loaded."""
    loaded = (
        Dataset.objects.filter(pk=dataset.pk)
        .annotate(version_count=Count("versions"))
        .prefetch_related("keywords", "owners", "groups")
        .get()
    )
    return loaded


def version_page(dataset: Dataset, *, limit: int, offset: int) -> tuple[int, list[Version]]:
    """Every version of a dataset, newest first."""
    versions = Version.objects.filter(dataset=dataset).select_related("dataset").order_by("-created", "id")
    return versions.count(), list(versions[offset : offset + limit])


def version_in(dataset: Dataset, ref: str) -> Version:
    """The version `ref` names in `dataset`, with its dataset loaded."""
    version = resolve_ref(dataset, ref)
    version.dataset = dataset
    return version


def branches_of(dataset: Dataset) -> list[Branch]:
    return list(Branch.objects.filter(dataset=dataset).select_related("head").order_by("name"))


def tags_of(dataset: Dataset):
    return list(dataset.tags.select_related("version").order_by("name"))


# -- entries by path ----------------------------------------------------------------------


# Walks kept in memory, newest last, up to this many entries in all.
_WALK_CACHE_ENTRIES = 400_000
_walks: OrderedDict[str, tuple[tuple[str, treeformat.Entry], ...]] = OrderedDict()
_walks_lock = threading.Lock()


def _sorted_entries(tree_id: str) -> tuple[tuple[str, treeformat.Entry], ...]:
    """Every entry below a tree, by path. A tree never changes (its id is the hash
    of its content), so the pages after the first — and the next client pulling
    the same version — reuse the walk instead of loading every tree again."""
    with _walks_lock:
        cached = _walks.get(tree_id)
        if cached is not None:
            _walks.move_to_end(tree_id)
            return cached
    items = [(item.path, item.entry) for item in walk_tree(tree_id)]
    items.sort(key=lambda pair: pair[0])
    walk = tuple(items)
    if len(walk) <= _WALK_CACHE_ENTRIES // 2:
        with _walks_lock:
            _walks[tree_id] = walk
            while sum(len(kept) for kept in _walks.values()) > _WALK_CACHE_ENTRIES:
                _walks.popitem(last=False)
    return walk


def version_entries(version: Version, under: str = "") -> list[tuple[str, treeformat.Entry]]:
    """Every entry of a version below folder `under`, as (path, entry), by path."""
    root_id = version.tree_id
    prefix = ""
    parts = [part for part in under.strip("/").split("/") if part]
    walked: list[str] = []
    for part in parts:
        walked.append(part)
        match = next((e for e in trees_load([root_id])[root_id] if e.name == part), None)
        if match is None or not match.is_tree:
            raise NotFound(f"{'/'.join(walked)} is not a folder of {version.dataset.name}@{version.semver}.")
        root_id = match.digest
    if not parts:
        return list(_sorted_entries(root_id))
    prefix = "/".join(parts) + "/"
    return [(prefix + path, entry) for path, entry in _sorted_entries(root_id)]


def file_page(version: Version, *, under: str, after: str | None, limit: int):
    """Files and links below `under`, by path, after path `after`: (count, page, next)."""
    items = [(path, entry) for path, entry in version_entries(version, under) if not entry.is_tree]
    paths = [path for path, _ in items]
    start = bisect.bisect_right(paths, after) if after else 0
    page = items[start : start + limit]
    more = start + limit < len(items)
    return len(items), page, (page[-1][0] if more and page else None)


# -- the pull manifest ------------------------------------------------------------------


@dataclass(slots=True)
class ManifestChunk:
    id: str
    span: int
    offset: int  # inside the span
    stored_length: int
    raw_length: int
    codec: int


@dataclass(slots=True)
class ManifestEntry:
    path: str
    kind: str
    size: int = 0
    digest: str | None = None
    target: str | None = None
    chunk_count: int = 0
    chunk_start: int = 0
    chunks: list[ManifestChunk] = field(default_factory=list)


@dataclass(slots=True)
class Manifest:
    version: Version
    total: int
    entries: list[ManifestEntry]
    spans: list[dict[str, object]]
    next: str | None


def _parse_cursor(cursor: str | None) -> tuple[str, int] | None:
    """A manifest cursor is "<chunk index>:<path>": where the next page starts."""
    if not cursor:
        return None
    index, sep, path = cursor.partition(":")
    if not sep or not index.isdigit() or not path or len(index) > 12:
        raise UserError("cursor is not one this API gave; start again without it.")
    return path, int(index)


def version_manifest(*, version: Version, cursor: str | None, limit: int, local_url: LocalUrl) -> Manifest:
    """One page of what a client needs to pull `version`: entries by path and, for
    each file, where its chunks lie in spans, with a signed URL per span.

    A span is an exact byte range of one pack covering chunks used one after
    another, so a reader is given only bytes this version holds, and needs each
    span only briefly. The caller has checked that the user may read the version.
    """
    items = version_entries(version)
    position = _parse_cursor(cursor)
    start, first_chunk = 0, 0
    if position is not None:
        start = bisect.bisect_left([path for path, _ in items], position[0])
        if start < len(items) and items[start][0] == position[0]:
            first_chunk = position[1]
    entries, planned, next_cursor = _page_entries(items[start : start + limit], first_chunk)
    if next_cursor is None and start + limit < len(items):
        # The page ended with the window, not inside a file: the next starts after it.
        next_cursor = f"0:{items[start + limit][0]}"
    spans = _page_spans(version, planned)
    span_out = []
    for pack_id, begin, end in spans:
        transfer: Transfer = span_transfer(pack_id, begin, end - begin, local_url)
        span_out.append({"url": transfer.url, "headers": transfer.headers, "length": end - begin})
    # The client fetches these spans from the store itself (presigned S3 GETs, or
    # pack_send for a local folder), never through this process: what the plan
    # hands out is what is counted as pulled.
    store_transferred("pull", sum(span["length"] for span in span_out))
    return Manifest(version, len(items), entries, span_out, next_cursor)


def _page_entries(
    window: list[tuple[str, treeformat.Entry]], first_chunk: int
) -> tuple[list[ManifestEntry], list[tuple[ManifestEntry, list[str]]], str | None]:
    """The entries of a page and, for each file, the chunks the page lists (the
    first file's from `first_chunk` on; at most MAX_PAGE_CHUNKS in all). With the
    cursor of the next page when the chunks ran out inside the window, else None."""
    chunks_of = file_chunks(entry.digest for _, entry in window if entry.is_file)
    entries: list[ManifestEntry] = []
    planned: list[tuple[ManifestEntry, list[str]]] = []
    budget = MAX_PAGE_CHUNKS
    for index, (path, entry) in enumerate(window):
        skip = first_chunk if index == 0 else 0
        if entry.kind == treeformat.LINK:
            entries.append(ManifestEntry(path, "link", target=entry.digest))
            continue
        if entry.is_tree:
            entries.append(ManifestEntry(path, "dir"))
            continue
        all_chunks = chunks_of[entry.digest]
        wanted = all_chunks[skip:]
        if budget <= 0 and wanted:
            return entries, planned, f"{skip}:{path}"
        taken = wanted[:budget]
        budget -= len(taken)
        manifest_entry = ManifestEntry(
            path,
            KIND_NAMES[entry.kind],
            entry.size,
            entry.digest,
            chunk_count=len(all_chunks),
            chunk_start=skip,
        )
        entries.append(manifest_entry)
        planned.append((manifest_entry, taken))
        if len(taken) < len(wanted):
            return entries, planned, f"{skip + len(taken)}:{path}"
    return entries, planned, None


def _page_spans(version: Version, planned: list[tuple[ManifestEntry, list[str]]]) -> list[list]:
    """The spans, as [pack, start, end], that hold the chunks of a page, in order;
    each chunk is added to its entry with its place in its span."""
    locations = DatabaseChunkIndex().locate([c for _, taken in planned for c in taken])
    # Cold packs of this page cannot be fetched: start their restore (once) and say
    # when to come back, as `strata pull` on the server does.
    check_restored(version, {location.pack_id for location in locations.values()})
    spans: list[list] = []  # [pack, start, end]
    for manifest_entry, taken in planned:
        for chunk_id in taken:
            location = locations.get(chunk_id)
            if location is None:
                raise IntegrityFailure(f"cannot pull {version}: chunk {chunk_id} is missing from the store.")
            last = spans[-1] if spans else None
            end = location.offset + location.stored_length
            if (
                last is not None
                and last[0] == location.pack_id
                and last[2] == location.offset
                and end - last[1] <= MAX_SPAN_BYTES
            ):
                last[2] = end
            else:
                spans.append([location.pack_id, location.offset, end])
            manifest_entry.chunks.append(
                ManifestChunk(
                    chunk_id,
                    len(spans) - 1,
                    location.offset - spans[-1][1],
                    location.stored_length,
                    location.raw_length,
                    location.codec,
                )
            )
    return spans
