"""`strata import-dvc`: a DVC project's pipeline brought into the lineage graph."""

from __future__ import annotations

from typing import Any

from lineage.ingest.dvc import dvc_import
from ops.cli.common import Output, actor, subcommand


def register(subparsers: Any) -> None:
    dvc = subcommand(
        subparsers,
        "import-dvc",
        help="import a DVC project's pipeline as lineage",
        handler=handle_import_dvc,
    )
    dvc.add_argument("path", metavar="PATH")
    dvc.add_argument("--project", default="", help="the project's name in the graph (default: the folder's)")
    dvc.add_argument("--author")


def handle_import_dvc(out: Output, options: dict[str, Any]) -> None:
    report = dvc_import(user=None, path=options["path"], project=options["project"], actor=actor(options))
    lines = [
        f"Imported DVC project {report.project}: {len(report.added)} new runs, "
        f"{len(report.unchanged)} already recorded, {report.data_files} .dvc files."
    ]
    lines += [f"  added {stage}" for stage in report.added]
    lines += [f"  model version {spec}" for spec in report.models]
    lines += [f"  note: {note}" for note in report.notes]
    if report.not_run:
        lines.append(f"  not in dvc.lock yet (never run): {', '.join(report.not_run)}")
    out.emit(report.as_dict(), "\n".join(lines))
