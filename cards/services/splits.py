"""Making a split version: the parent's files plus the split, on a branch, at stage
``split``, with the lineage run that made it.

For a tabular file the split files are written in the input's own format as
``splits/<name>.<ext>`` beside ``splits/split.json`` (the report: parameters,
sizes, labels per split, leakage). For a folder of files (no table to split) each
split is a manifest, ``splits/<name>.jsonl``, one line per file: path, size,
digest. Every check of the input happens before a byte is stored, so bad input
creates nothing. The pure work is ``cards.domain.splits``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from django.conf import settings

from cards.domain.splits import METHODS, SplitError, SplitReport, parse_ratios, split_table
from cards.services.cards import SPLIT_REPORT_PATH
from catalog import permissions
from catalog.domain.tabular import TableError, is_tabular, read_table
from catalog.errors import UserError
from catalog.models import Branch, Dataset, Stage, Version
from catalog.selectors.exports import file_stream
from catalog.services.commits import CommitContent, commit_on_head, version_commit
from catalog.services.validation import check_ref_name
from catalog.services.versions import build_trees_from
from catalog.store import DatabaseChunkIndex, WalkedEntry, get_backend, walk_tree
from lineage.services.runs import run_record, version_endpoint
from strata_store import tree as treeformat
from strata_store.store import FileRecord, Ingest, IngestReport

SPLIT_FOLDER = "splits"


@dataclass
class SplitResult:
    version: Version
    created: bool
    report: SplitReport
    input: str  # the file split, or "" for a folder of files
    run_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.version.dataset.name,
            "version": self.version.id,
            "semver": self.version.semver,
            "created": self.created,
            "input": self.input,
            "run": self.run_id,
            **self.report.as_dict(),
        }


def _write_table(table: pa.Table, path: str) -> bytes:
    """A table in the format its file name says, written the same way every time."""
    lowered = path.lower()
    if lowered.endswith(".parquet"):
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd", write_statistics=False)
        return sink.getvalue()
    if lowered.endswith((".jsonl", ".ndjson")):
        lines = [json.dumps(row, ensure_ascii=False, default=str) for row in table.to_pylist()]
        return ("\n".join(lines) + "\n").encode() if lines else b""
    import pyarrow.csv as pcsv

    sink = io.BytesIO()
    delimiter = "\t" if lowered.endswith(".tsv") else ","
    pcsv.write_csv(table, sink, write_options=pcsv.WriteOptions(delimiter=delimiter))
    return sink.getvalue()


def _folder_table(walked: list[Any]) -> pa.Table:
    """A folder of files as a table: the path is the id, the digest the content."""
    files = [w for w in walked if w.entry.is_file and not w.path.startswith(SPLIT_FOLDER + "/")]
    return pa.table(
        {
            "path": [w.path for w in files],
            "folder": [w.path.rpartition("/")[0] for w in files],
            "digest": [w.entry.digest for w in files],
            "size": [w.entry.size for w in files],
        }
    )


@dataclass(slots=True)
class SplitAsk:
    """What a split was asked for, checked: kept together for the steps below."""

    dataset: Dataset
    source: Version
    id_column: str
    ratios: dict[str, float]
    method: str
    seed: int
    label_column: str | None
    stratify: bool
    branch_name: str
    file: str | None

    def message(self, input_path: str) -> str:
        return f"Split {input_path or 'the files'} {self.method} by {self.id_column} into " + ", ".join(
            f"{name} {ratio:g}" for name, ratio in self.ratios.items()
        )

    def params(self, input_path: str) -> dict[str, object]:
        return {
            "source": f"{self.source.dataset.name}@{self.source.semver}",
            "source_version": self.source.id,
            "input": input_path or "(folder of files)",
            "id_column": self.id_column,
            "label_column": self.label_column,
            "ratios": self.ratios,
            "method": self.method,
            "seed": self.seed,
            "stratify": self.stratify,
            "branch": self.branch_name,
        }

    def command(self, input_path: str) -> str:
        """The ``strata split`` command line that makes this split again."""
        source = self.source
        return (
            f"strata split {source.dataset.name}@{source.semver} --id-column {self.id_column}"
            + (f" --label-column {self.label_column}" if self.label_column else "")
            + " --ratios "
            + ",".join(f"{name}={ratio:g}" for name, ratio in self.ratios.items())
            + f" --method {self.method} --seed {self.seed}"
            + (" --stratify" if self.stratify else "")
            + f" --branch {self.branch_name}"
            + (f" --file {input_path}" if self.file else "")
        )


def split_make(
    *,
    user: permissions.User,
    dataset: Dataset,
    source: Version,
    id_column: str,
    ratios: str | dict[str, float],
    method: str = "hash",
    seed: int = 42,
    label_column: str | None = None,
    stratify: bool = False,
    branch: str | None = None,
    file: str | None = None,
    author: str = "",
    origin: str = "cli",
) -> SplitResult:
    """Split a version's table (or folder of files) and commit the split as a new
    version at stage ``split`` on `branch` (default ``main``), recording the
    lineage run with every parameter. Stewards make splits.

    Makes no version when the branch head already holds exactly this split.
    """
    permissions.require_write(user, dataset)
    permissions.require_read(user, source.dataset)
    if user is not None:
        author = user.get_username()
    if not author:
        raise UserError("a split needs an author.")
    if method not in METHODS:
        raise UserError(f"{method!r} is not a split method: use hash or random.")
    try:
        ratio_map = parse_ratios(ratios) if isinstance(ratios, str) else dict(ratios)
    except SplitError as error:
        raise UserError(f"cannot split: {error}") from None
    ask = SplitAsk(
        dataset, source, id_column, ratio_map, method, seed, label_column, stratify, branch or "main", file
    )
    check_ref_name(ask.branch_name)
    head = _branch_head(dataset, ask.branch_name)
    walked = walk_tree(source.tree_id)
    input_path = _input_path(ask, walked)
    try:
        outputs, report = _split_table(ask, input_path) if input_path else _split_folder(ask, walked)
    except SplitError as error:
        raise UserError(f"cannot split {dataset.name}@{source.semver}: {error}") from None
    report_data = report.as_dict() | {
        "input": input_path,
        "source": source.id,
        "source_semver": source.semver,
    }
    outputs[SPLIT_REPORT_PATH] = (json.dumps(report_data, indent=2, sort_keys=True) + "\n").encode()

    # Data before metadata: the split files are stored in packs first.
    records, digests, ingest_report = _store_outputs(outputs)
    root_id, trees, file_count, logical = _split_tree(source, digests)
    if root_id == head.tree_id and head.stage == Stage.SPLIT:
        return SplitResult(head, False, report, input_path, None)

    version, run_id = _commit_split(
        ask, user=user, author=author, origin=origin, head=head, input_path=input_path,
        tree=(root_id, trees, file_count, logical), records=records, ingest_report=ingest_report,
    )  # fmt: skip
    return SplitResult(version, True, report, input_path, run_id)


def _commit_split(
    ask: SplitAsk,
    *,
    user: permissions.User,
    author: str,
    origin: str,
    head: Version,
    input_path: str,
    tree: tuple[str, dict[str, tuple[bytes, int]], int, int],
    records: dict[str, FileRecord],
    ingest_report: IngestReport,
) -> tuple[Version, int]:
    """Commit the split version on the branch, with the run that made it recorded
    in the same transaction: the version and its run together, or neither."""
    dataset, source, method = ask.dataset, ask.source, ask.method
    request = commit_on_head(
        user=user, dataset=dataset, branch_name=ask.branch_name, head=head, author=author,
        message=ask.message(input_path),
    )  # fmt: skip
    request.stage = Stage.SPLIT
    request.content = CommitContent.stored(tree, records, ingest_report)
    request.relied_on = ingest_report.reused_chunks
    request.relies_on_version = source
    runs: list[int] = []

    def record_run(version: Version) -> None:
        run = run_record(
            user=user,
            actor=author,
            name=f"split-{method}",
            step="split",
            params=ask.params(input_path),
            inputs=[version_endpoint(source)],
            outputs=[version_endpoint(version)],
            command=ask.command(input_path),
            origin=origin,
        )
        runs.append(run.run.node_id)

    request.within.append(record_run)
    version = version_commit(request)
    return version, runs[0]


def _branch_head(dataset: Dataset, branch_name: str) -> Version:
    branch_row = Branch.objects.filter(dataset=dataset, name=branch_name).select_related("head").first()
    if branch_row is None:
        raise UserError(
            f"dataset {dataset.name} has no branch {branch_name}; create it first with "
            f"`strata branch {dataset.name} {branch_name}`."
        )
    return branch_row.head


def _input_path(ask: SplitAsk, walked: list[WalkedEntry]) -> str:
    """The table to split: the one named, the only one there is, or "" for a folder of files."""
    dataset, source, file = ask.dataset, ask.source, ask.file
    tables = [
        w.path
        for w in walked
        if w.entry.is_file and is_tabular(w.path) and not w.path.startswith(SPLIT_FOLDER + "/")
    ]
    if file:
        file = file.strip("/")
        if file not in tables:
            raise UserError(f"{file} is not a table in {dataset.name}@{source.semver}; the tables are: "
                            f"{', '.join(tables) or 'none'}.")  # fmt: skip
        return file
    if len(tables) == 1:
        return tables[0]
    if len(tables) > 1:
        raise UserError(
            f"{dataset.name}@{source.semver} holds {len(tables)} tables; name the one to split with --file"
            f" (one of {', '.join(tables[:5])})."
        )
    return ""


def _split_table(ask: SplitAsk, input_path: str) -> tuple[dict[str, bytes], SplitReport]:
    """A table split into tables of its own format, one per split."""
    try:
        table = read_table(input_path, b"".join(file_stream(ask.source, input_path).chunks))
    except TableError as error:
        raise UserError(str(error)) from None
    parts, report = split_table(
        table,
        id_column=ask.id_column,
        ratios=ask.ratios,
        method=ask.method,
        seed=ask.seed,
        label_column=ask.label_column,
        stratify=ask.stratify,
    )
    extension = input_path.rpartition(".")[2]
    outputs = {
        f"{SPLIT_FOLDER}/{name}.{extension}": _write_table(part, input_path) for name, part in parts.items()
    }
    return outputs, report


def _split_folder(ask: SplitAsk, walked: list[WalkedEntry]) -> tuple[dict[str, bytes], SplitReport]:
    """A folder of files split by path: one manifest (JSON lines) per split."""
    where = f"{ask.dataset.name}@{ask.source.semver}"
    if ask.id_column != "path":
        raise UserError(f"{where} holds no table, so its files are split by path: use --id-column path.")
    if ask.label_column not in (None, "folder"):
        raise UserError(
            f"there is no label column {ask.label_column!r} in a folder of files: use --label-column folder."
        )
    table = _folder_table(walked)
    if table.num_rows == 0:
        raise UserError(f"{where} has no files to split.")
    parts, report = split_table(
        table.select(["path", "folder", "digest"] if ask.label_column else ["path", "digest"]),
        id_column="path",
        ratios=ask.ratios,
        method=ask.method,
        seed=ask.seed,
        label_column=ask.label_column,
        stratify=ask.stratify,
    )
    sizes = dict(zip(table.column("path").to_pylist(), table.column("size").to_pylist(), strict=True))
    outputs: dict[str, bytes] = {}
    for name, part in parts.items():
        lines = [
            json.dumps({"path": p, "size": sizes[p], "digest": d}, sort_keys=True)
            for p, d in zip(part.column("path").to_pylist(), part.column("digest").to_pylist(), strict=True)
        ]
        outputs[f"{SPLIT_FOLDER}/{name}.jsonl"] = ("\n".join(lines) + "\n").encode() if lines else b""
    return outputs, report


def _store_outputs(
    outputs: dict[str, bytes],
) -> tuple[dict[str, FileRecord], dict[str, tuple[int, str]], IngestReport]:
    """Store the split's files in packs; (records, path -> (size, digest), report)."""
    ingest = Ingest(get_backend(), DatabaseChunkIndex(), pack_size=settings.STRATA_PACK_SIZE)
    records: dict[str, FileRecord] = {}
    digests: dict[str, tuple[int, str]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="strata-split-") as scratch:
            for index, (relpath, data) in enumerate(sorted(outputs.items())):
                local = os.path.join(scratch, f"{index}")
                with open(local, "wb") as handle:
                    handle.write(data)
                record = ingest.add_file(local, len(data))
                records[record.digest] = record
                digests[relpath] = (len(data), record.digest)
        return records, digests, ingest.finish()
    except BaseException:
        ingest.abort()
        raise


def _split_tree(
    source: Version, digests: dict[str, tuple[int, str]]
) -> tuple[str, dict[str, tuple[bytes, int]], int, int]:
    """The tree: the source's files (any earlier split replaced), then the split."""
    files: list[tuple[str, str, int, str]] = []
    links: dict[str, str] = {}
    dirs = {"", SPLIT_FOLDER}
    for item in walk_tree(source.tree_id):
        if item.path == SPLIT_FOLDER or item.path.startswith(SPLIT_FOLDER + "/"):
            continue
        if item.entry.is_tree:
            dirs.add(item.path)
        elif item.entry.kind == treeformat.LINK:
            links[item.path] = item.entry.digest
        else:
            files.append((item.path, item.entry.kind, item.entry.size, item.entry.digest))
    for relpath, (size, digest) in digests.items():
        files.append((relpath, treeformat.FILE, size, digest))
    return build_trees_from(files=files, links=links, dirs=dirs)
