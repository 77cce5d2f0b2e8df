"""Previews of one stored file: the first lines of text, the first rows of a table,
a Parquet file's schema and first rows, an image's thumbnail.

A preview reads only the chunks it needs, through `read_chunks`, so every byte shown
is verified and a preview of a 10 GB file reads a few hundred KiB: text and tables
from the start, Parquet from its footer and first row group. Anything that cannot be
previewed says why, in one sentence, and offers the download instead.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from dataclasses import dataclass, field

from catalog.errors import IntegrityFailure, NotFound
from catalog.models import Version
from catalog.selectors.exports import find_entry
from catalog.store import DatabaseChunkIndex, file_chunks, get_backend
from strata_store import tree as treeformat
from strata_store.errors import MissingObject, StoreError
from strata_store.seekable import SeekableReader
from strata_store.store import locate_all, read_chunks

TEXT_BYTES = 64 * 1024
TABLE_BYTES = 256 * 1024
TABLE_ROWS = 50
TEXT_LINES = 200
CELL_CHARS = 200
PARQUET_ROW_GROUP_BYTES = 32 * 1024 * 1024
IMAGE_BYTES = 32 * 1024 * 1024
THUMBNAIL_PIXELS = 640

TEXT_EXTENSIONS = {
    ".txt", ".md", ".rst", ".log", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg",
    ".py", ".sh", ".sql", ".xml", ".html", ".htm", ".css", ".js", ".r", ".ipynb", ".lock",
}  # fmt: skip
TABLE_EXTENSIONS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSONL_EXTENSIONS = {".jsonl", ".ndjson"}
PARQUET_EXTENSIONS = {".parquet", ".pq"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}


@dataclass(slots=True)
class Preview:
    """What the file page shows. `kind` picks the template: text, table, parquet,
    image or none (with `note` saying why)."""

    kind: str
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    schema: list[tuple[str, str, bool]] = field(default_factory=list)  # name, type, nullable
    row_count: int | None = None
    truncated: bool = False
    note: str = ""


class StoredFile(SeekableReader):
    """A stored file as a read-only, seekable file object that fetches only the
    chunks a read touches, each verified. Chunk positions are learned in batches
    from the start, so a read near the start costs a query or two."""

    _BATCH = 256

    def __init__(self, entry: treeformat.Entry) -> None:
        super().__init__(entry.size)
        self._chunk_ids = file_chunks([entry.digest])[entry.digest]
        self._starts: list[int] = []  # offset in the file of each located chunk
        self._locations: list = []
        self._located_end = 0
        self._cached: tuple[int, bytes] | None = None  # (chunk index, content)

    def _locate_until(self, offset: int) -> None:
        index = DatabaseChunkIndex()
        while self._located_end <= offset and len(self._locations) < len(self._chunk_ids):
            batch = self._chunk_ids[len(self._locations) : len(self._locations) + self._BATCH]
            try:
                found = locate_all(index, batch)
            except MissingObject as error:
                raise IntegrityFailure(f"cannot read the file: {error}") from None
            for chunk_id in batch:
                location = found[chunk_id]
                self._starts.append(self._located_end)
                self._locations.append(location)
                self._located_end += location.raw_length

    def _chunk(self, index: int) -> bytes:
        if self._cached is None or self._cached[0] != index:
            try:
                data = next(read_chunks(get_backend(), [self._locations[index]], workers=1))
            except StoreError as error:
                raise IntegrityFailure(f"cannot read the file: {error}") from None
            self._cached = (index, data)
        return self._cached[1]

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        if self._position >= end:
            return b""
        self._locate_until(end - 1)
        parts = []
        # The chunk holding the current position: the last start at or before it.
        index = _last_at_or_before(self._starts, self._position)
        while self._position < end:
            data = self._chunk(index)
            begin = self._position - self._starts[index]
            piece = data[begin : begin + (end - self._position)]
            parts.append(piece)
            self._position += len(piece)
            index += 1
        return b"".join(parts)


def _last_at_or_before(starts: list[int], offset: int) -> int:
    low, high = 0, len(starts) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if starts[middle] <= offset:
            low = middle
        else:
            high = middle - 1
    return low


def extension(path: str) -> str:
    name = posixpath.basename(path).lower()
    for double in (".tar.gz",):
        if name.endswith(double):
            return double
    return posixpath.splitext(name)[1]


def is_image(path: str) -> bool:
    return extension(path) in IMAGE_EXTENSIONS


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _head(stored: StoredFile, limit: int) -> tuple[bytes, bool]:
    data = stored.read(limit)
    return data, stored.size > len(data)


def _complete_lines(data: bytes, truncated: bool) -> str:
    """Decode, dropping a last line that the byte limit cut in half."""
    if truncated and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return data.decode("utf-8", errors="replace")


def _text(stored: StoredFile) -> Preview:
    data, truncated = _head(stored, TEXT_BYTES)
    if b"\0" in data[:8192]:
        return Preview("none", note="This file looks binary: there is no text to show.")
    lines = _complete_lines(data, truncated).splitlines()
    if len(lines) > TEXT_LINES:
        lines, truncated = lines[:TEXT_LINES], True
    return Preview("text", text="\n".join(lines), truncated=truncated)


def _table(stored: StoredFile, delimiter: str) -> Preview:
    data, truncated = _head(stored, TABLE_BYTES)
    reader = csv.reader(io.StringIO(_complete_lines(data, truncated)), delimiter=delimiter)
    try:
        header = next(reader, [])
        rows: list[list[str]] = []
        for row in reader:
            if len(rows) == TABLE_ROWS:
                truncated = True
                break
            rows.append([_cell(value) for value in row])
    except csv.Error as error:
        return Preview("none", note=f"This file is not valid delimited text: {error}.")
    width = max([len(header)] + [len(row) for row in rows])
    columns = [_cell(name) for name in header] + [""] * (width - len(header))
    return Preview(
        "table", columns=columns, rows=[row + [""] * (width - len(row)) for row in rows], truncated=truncated
    )


def _jsonl(stored: StoredFile) -> Preview:
    data, truncated = _head(stored, TABLE_BYTES)
    records: list[object] = []
    for number, line in enumerate(_complete_lines(data, truncated).splitlines(), start=1):
        if not line.strip():
            continue
        if len(records) == TABLE_ROWS:
            truncated = True
            break
        try:
            records.append(json.loads(line))
        except ValueError:
            return Preview("none", note=f"Line {number} is not valid JSON, so there is no table to show.")
    columns: list[str] = []
    for record in records:
        for key in record if isinstance(record, dict) else ["value"]:
            if key not in columns:
                columns.append(key)
    rows = [
        [_cell(record.get(key, "")) if isinstance(record, dict) else _cell(record) for key in columns]
        for record in records
    ]
    return Preview("table", columns=columns, rows=rows, truncated=truncated)


def _parquet(stored: StoredFile) -> Preview:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stored)
    except Exception as error:  # pyarrow raises several kinds for a bad file
        return Preview("none", note=f"This is not a readable Parquet file ({error}).")
    metadata = parquet.metadata
    schema = [(column.name, str(column.type), column.nullable) for column in parquet.schema_arrow]
    preview = Preview("parquet", schema=schema, row_count=metadata.num_rows, columns=[s[0] for s in schema])
    if metadata.num_row_groups == 0:
        return preview
    if metadata.row_group(0).total_byte_size > PARQUET_ROW_GROUP_BYTES:
        preview.note = "The first row group is too large to read for a preview; the schema is above."
        return preview
    batch = next(parquet.iter_batches(batch_size=TABLE_ROWS, row_groups=[0], use_threads=False), None)
    if batch is not None:
        columns = batch.to_pydict()
        preview.rows = [
            [_cell(columns[name][i]) for name in batch.schema.names] for i in range(batch.num_rows)
        ]
        preview.truncated = metadata.num_rows > batch.num_rows
    return preview


def _entry(version: Version, path: str) -> treeformat.Entry:
    try:
        entry = find_entry(version, path)
    except NotFound:
        # Name the whole path asked for, not only its first missing folder.
        raise NotFound(f"{path.strip('/')} is not in {version.dataset.name}@{version.semver}.") from None
    if not entry.is_file:
        raise NotFound(f"{path} in {version.dataset.name}@{version.semver} is not a file.")
    return entry


def preview_entry(entry: treeformat.Entry, path: str) -> Preview:
    """The preview of one file entry, chosen by its extension."""
    ext = extension(path)
    if entry.size == 0:
        return Preview("none", note="This file is empty.")
    if ext in IMAGE_EXTENSIONS:
        if entry.size > IMAGE_BYTES:
            return Preview("none", note="This image is too large for a thumbnail; download it instead.")
        return Preview("image")
    stored = StoredFile(entry)
    if ext in TABLE_EXTENSIONS:
        return _table(stored, TABLE_EXTENSIONS[ext])
    if ext in JSONL_EXTENSIONS:
        return _jsonl(stored)
    if ext in PARQUET_EXTENSIONS:
        return _parquet(stored)
    if ext in TEXT_EXTENSIONS or ext == "":
        return _text(stored)
    return Preview(
        "none", note=f"There is no preview for {ext or 'this kind of'} files; download it instead."
    )


def file_preview(version: Version, path: str) -> tuple[treeformat.Entry, Preview]:
    """The entry at `path` and its preview (NotFound when the path is not a file)."""
    entry = _entry(version, path)
    return entry, preview_entry(entry, path)


def thumbnail(version: Version, path: str) -> tuple[bytes, str]:
    """An image's thumbnail, no larger than THUMBNAIL_PIXELS on a side, and its
    content type: JPEG for photos, PNG for everything else."""
    from PIL import Image

    entry = _entry(version, path)
    if not is_image(path) or entry.size > IMAGE_BYTES:
        raise NotFound(f"{path} has no thumbnail.")
    data = StoredFile(entry).read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            out = io.BytesIO()
            if image.mode in ("RGB", "L") and extension(path) in (".jpg", ".jpeg"):
                image.save(out, format="JPEG", quality=85)
                return out.getvalue(), "image/jpeg"
            image.convert("RGBA").save(out, format="PNG")
            return out.getvalue(), "image/png"
    except (OSError, Image.DecompressionBombError, ValueError) as error:
        raise NotFound(f"{path} is not an image that can be shown ({error}).") from None
