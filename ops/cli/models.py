"""`strata record-training`, `lock` and `reproduce`: model versions, the exact
dataset versions they used, and getting those bytes back, through the registry."""

from __future__ import annotations

import os
from typing import Any

from catalog.domain.formatting import code_line, human_bytes
from catalog.errors import UserError
from catalog.services.validation import parse_code_ref
from lineage.services.runs import parse_params
from ops.cli.common import Output, actor, subcommand
from registry.selectors import split_model_spec
from registry.services.locks import (
    DEFAULT_LOCK_NAME,
    Lock,
    ReproduceResult,
    lock_build,
    lock_dump,
    lock_read,
    lock_reproduce,
    lock_write,
)
from registry.services.training import TrainingResult, training_record


def register(subparsers: Any) -> None:
    _register_record(subparsers)
    lock = subcommand(
        subparsers,
        "lock",
        help="write strata.lock: the exact versions of datasets or of a model",
        handler=handle_lock,
    )
    lock.add_argument("specs", nargs="*", metavar="DATASET@REF")
    lock.add_argument("--model", metavar="MODEL@VERSION", help="lock every version the model pinned")
    lock.add_argument(
        "-o",
        "--output",
        default="strata.lock",
        help="where to write it (default strata.lock; - for stdout)",
    )
    _register_reproduce(subparsers)


def _register_record(subparsers: Any) -> None:
    record = subcommand(
        subparsers,
        "record-training",
        help="register a model version with the exact dataset versions it trained on",
        handler=handle_record_training,
    )
    record.add_argument("model", metavar="MODEL@VERSION")
    record.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="ROLE=DATASET@REF",
        help="a dataset the model used, e.g. train=reviews@2.3.0 or eval=reviews-eval@main (repeatable)",
    )
    record.add_argument("--metric", action="append", default=[], metavar="NAME=NUMBER")
    record.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    record.add_argument("--code", default="", metavar="REPOSITORY#COMMIT")
    record.add_argument("--artifact", default="", metavar="URI", help="where the model's weights are")
    record.add_argument("--message", "-m", default="", help="a description of the model version")
    record.add_argument("--author")


def _register_reproduce(subparsers: Any) -> None:
    reproduce = subcommand(
        subparsers,
        "reproduce",
        help="materialise every version of a lock (or of a model) into DEST, every byte verified",
        handler=handle_reproduce,
    )
    reproduce.add_argument("paths", nargs="+", metavar="[LOCK] DEST")
    reproduce.add_argument(
        "--model", metavar="MODEL@VERSION", help="reproduce a model's data, no lock needed"
    )
    reproduce.add_argument(
        "--restore",
        action="store_true",
        help="restore data in cold storage first, waiting until readable",
    )
    reproduce.add_argument("--force", action="store_true", help="replace the folders it writes in DEST")
    reproduce.add_argument(
        "--code-dir",
        metavar="DIR",
        help="a git clone of the model's code: check out the commit the lock records there",
    )
    reproduce.add_argument(
        "--poll",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often to check restores (default 60)",
    )
    reproduce.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop waiting for restores after this",
    )


def _datasets_by_role(pairs: list[str]) -> dict[str, str]:
    """['train=reviews@2.3.0'] -> {'train': 'reviews@2.3.0'}, one dataset per role."""
    datasets: dict[str, str] = {}
    for pair in pairs:
        role, sep, spec = pair.partition("=")
        if not sep or not role.strip() or not spec.strip():
            raise UserError(f"{pair!r} is not a dataset: write ROLE=DATASET@REF, e.g. train=reviews@2.3.0.")
        if role.strip() in datasets:
            raise UserError(f"the role {role.strip()} is given twice: one dataset version per role.")
        datasets[role.strip()] = spec.strip()
    return datasets


def handle_record_training(out: Output, options: dict[str, Any]) -> None:
    name, version = split_model_spec(options["model"])
    result = training_record(
        user=None,
        model=name,
        version=version,
        datasets=_datasets_by_role(options["dataset"]),
        metrics=parse_params(options["metric"]),
        params=parse_params(options["param"]),
        code=options["code"],
        artifact=options["artifact"],
        description=options["message"],
        actor=actor(options),
        origin="cli",
    )
    out.emit(result.as_dict(), "\n".join(_training_lines(result)))


def _training_lines(result: TrainingResult) -> list[str]:
    model = result.model
    verb = "Registered" if result.created else "Already registered, unchanged:"
    lines = [f"{verb} {model.spec} (lineage node {model.node_id})"]
    lines += [
        f"  {pin.role:<12} {pin.version.dataset.name}@{pin.version.semver}  {pin.version.id}"
        + (
            f"  (from {pin.requested})"
            if pin.requested != f"{pin.version.dataset.name}@{pin.version.semver}"
            else ""
        )
        for pin in result.pins
    ]
    for change in model.regressions:
        lines.append(
            f"  REGRESSION {change['metric']}: {change['before']} -> {change['after']}"
            f" ({change['better']} is better, tolerance {change['tolerance']})"
        )
    return lines


def handle_lock(out: Output, options: dict[str, Any]) -> None:
    lock = lock_build(user=None, specs=options["specs"], model=options["model"])
    output = options["output"]
    if output == "-":
        out.write(lock_dump(lock), ending="")
        return
    lock_write(lock, output)
    lines = [
        f"Wrote {output}: {len(lock.entries)} dataset versions" + (f" of {lock.model}" if lock.model else "")
    ]
    lines += [f"  {entry.folder:<14} {entry.label:<28} {entry.version}" for entry in lock.entries]
    if lock.code:
        lines.append(f"  code of {lock.model}: {_code_text(lock.code)}")
    out.emit({"path": output, **lock.as_dict()}, "\n".join(lines))


def _code_text(code: str) -> str:
    """'REPO#REF' -> 'REPO @ REF', as the version page shows it."""
    return code_line(*parse_code_ref(code))


def _lock_to_reproduce(options: dict[str, Any]) -> tuple[Lock, str, str]:
    """The lock, its name and the destination, from a lock file or from --model."""
    paths = options["paths"]
    if options["model"]:
        if len(paths) != 1:
            raise UserError("with --model, give only DEST: strata reproduce --model MODEL@VERSION DEST.")
        return lock_build(user=None, model=options["model"]), options["model"], paths[0]
    if len(paths) != 2:
        raise UserError("give the lock and a folder: strata reproduce strata.lock DEST (or --model).")
    return lock_read(paths[0]), os.path.basename(paths[0]) or DEFAULT_LOCK_NAME, paths[1]


def handle_reproduce(out: Output, options: dict[str, Any]) -> None:
    lock, name, dest = _lock_to_reproduce(options)
    result = lock_reproduce(
        user=None,
        lock=lock,
        dest=dest,
        name=name,
        force=options["force"],
        restore=options["restore"],
        poll_seconds=max(options["poll"], 0.05),
        timeout_seconds=options["timeout"],
        notify=out.note,
        code_dir=options["code_dir"],
    )
    total = sum(pulled.bytes_written for _, pulled in result.pulled)
    lines = [
        f"Reproduced {len(result.pulled)} dataset versions into {result.dest} ({human_bytes(total)}),"
        " every byte verified:"
    ]
    lines += [
        f"  {entry.folder + '/':<15} {entry.label:<28} {pulled.file_count:,} files  {entry.version[:12]}"
        for entry, pulled in result.pulled
    ]
    out.emit(result.as_dict(), "\n".join(lines + _code_lines(result)))


def _code_lines(result: ReproduceResult) -> list[str]:
    """The code to check out beside the data: the model's, then each version's."""
    named = [(f"model {result.model}", result.code)] if result.code else []
    named += [
        (f"{entry.folder + '/':<15} {entry.label}", entry.code) for entry, _ in result.pulled if entry.code
    ]
    if not named:
        return []
    width = max(len(label) for label, _ in named)
    lines = ["Code to check out:"] + [f"  {label:<{width}}  {_code_text(code)}" for label, code in named]
    if result.checked_out:
        lines.append(f"Checked out {result.checked_out} in {result.code_dir} (detached HEAD).")
    return lines
