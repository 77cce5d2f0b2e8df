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
from django.db import transaction

from cards.domain.splits import METHODS, SplitError, SplitReport, parse_ratios, split_table
from cards.services.cards import SPLIT_REPORT_PATH
from catalog import permissions
from catalog.errors import UserError
from catalog.models import Branch, Dataset, Stage, Version
from catalog.store import DatabaseChunkIndex, get_backend, walk_tree
from strata_store import tree as treeformat
from strata_store.store import FileRecord, Ingest

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
    from catalog.domain.tabular import TableError, is_tabular, read_table
    from catalog.selectors.exports import file_stream
    from catalog.services.commits import CommitContent, commit_on_head, version_commit
    from catalog.services.validation import check_ref_name
    from catalog.services.versions import build_trees_from
    from lineage.services.runs import run_record, version_endpoint

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
    branch_name = branch or "main"
    check_ref_name(branch_name)
    branch_row = Branch.objects.filter(dataset=dataset, name=branch_name).select_related("head").first()
    if branch_row is None:
        raise UserError(
            f"dataset {dataset.name} has no branch {branch_name}; create it first with "
            f"`strata branch {dataset.name} {branch_name}`."
        )
    head = branch_row.head

    walked = walk_tree(source.tree_id)
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
        input_path = file
    elif len(tables) == 1:
        input_path = tables[0]
    elif len(tables) > 1:
        raise UserError(
            f"{dataset.name}@{source.semver} holds {len(tables)} tables; name the one to split with --file"
            f" (one of {', '.join(tables[:5])})."
        )
    else:
        input_path = ""

    outputs: dict[str, bytes] = {}
    try:
        if input_path:
            try:
                table = read_table(input_path, b"".join(file_stream(source, input_path).chunks))
            except TableError as error:
                raise UserError(str(error)) from None
            parts, report = split_table(
                table,
                id_column=id_column,
                ratios=ratio_map,
                method=method,
                seed=seed,
                label_column=label_column,
                stratify=stratify,
            )
            extension = input_path.rpartition(".")[2]
            for name, part in parts.items():
                outputs[f"{SPLIT_FOLDER}/{name}.{extension}"] = _write_table(part, input_path)
        else:
            if id_column != "path":
                raise UserError(
                    f"{dataset.name}@{source.semver} holds no table, so its files are split by path:"
                    " use --id-column path."
                )
            if label_column not in (None, "folder"):
                raise UserError(
                    f"there is no label column {label_column!r} in a folder of files: use --label-column folder."
                )
            table = _folder_table(walked)
            if table.num_rows == 0:
                raise UserError(f"{dataset.name}@{source.semver} has no files to split.")
            parts, report = split_table(
                table.select(["path", "folder", "digest"] if label_column else ["path", "digest"]),
                id_column="path",
                ratios=ratio_map,
                method=method,
                seed=seed,
                label_column=label_column,
                stratify=stratify,
            )
            sizes = dict(zip(table.column("path").to_pylist(), table.column("size").to_pylist(), strict=True))
            for name, part in parts.items():
                lines = [
                    json.dumps({"path": p, "size": sizes[p], "digest": d}, sort_keys=True)
                    for p, d in zip(
                        part.column("path").to_pylist(), part.column("digest").to_pylist(), strict=True
                    )
                ]
                outputs[f"{SPLIT_FOLDER}/{name}.jsonl"] = ("\n".join(lines) + "\n").encode() if lines else b""
    except SplitError as error:
        raise UserError(f"cannot split {dataset.name}@{source.semver}: {error}") from None

    report_data = report.as_dict() | {
        "input": input_path,
        "source": source.id,
        "source_semver": source.semver,
    }
    outputs[SPLIT_REPORT_PATH] = (json.dumps(report_data, indent=2, sort_keys=True) + "\n").encode()

    # Data before metadata: the split files are stored in packs first.
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
        ingest_report = ingest.finish()
    except BaseException:
        ingest.abort()
        raise

    # The tree: the source's files (any earlier split replaced), then the split.
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
    root_id, trees, file_count, logical = build_trees_from(files=files, links=links, dirs=dirs)
    if root_id == head.tree_id and head.stage == Stage.SPLIT:
        return SplitResult(head, False, report, input_path, None)

    params = {
        "source": f"{source.dataset.name}@{source.semver}",
        "source_version": source.id,
        "input": input_path or "(folder of files)",
        "id_column": id_column,
        "label_column": label_column,
        "ratios": ratio_map,
        "method": method,
        "seed": seed,
        "stratify": stratify,
        "branch": branch_name,
    }
    # The version and its run together, or neither.
    with transaction.atomic():
        request = commit_on_head(
            user=user,
            dataset=dataset,
            branch_name=branch_name,
            head=head,
            author=author,
            message=f"Split {input_path or 'the files'} {method} by {id_column} into "
            + ", ".join(f"{name} {ratio:g}" for name, ratio in ratio_map.items()),
        )
        request.stage = Stage.SPLIT
        request.content = CommitContent(
            root_id=root_id,
            file_count=file_count,
            logical=logical,
            trees=trees,
            records=records,
            packs=ingest_report.packs,
            new_bytes=ingest_report.new_raw_bytes,
            stored_bytes=ingest_report.new_bytes,
        )
        request.relied_on = ingest_report.reused_chunks
        request.relies_on_version = source
        version = version_commit(request)
        run = run_record(
            user=user,
            actor=author,
            name=f"split-{method}",
            step="split",
            params=params,
            inputs=[version_endpoint(source)],
            outputs=[version_endpoint(version)],
            command=(
                f"strata split {source.dataset.name}@{source.semver} --id-column {id_column}"
                + (f" --label-column {label_column}" if label_column else "")
                + " --ratios "
                + ",".join(f"{name}={ratio:g}" for name, ratio in ratio_map.items())
                + f" --method {method} --seed {seed}"
                + (" --stratify" if stratify else "")
                + f" --branch {branch_name}"
                + (f" --file {input_path}" if file else "")
            ),
            origin=origin,
        )
    return SplitResult(version, True, report, input_path, run.run.node_id)
