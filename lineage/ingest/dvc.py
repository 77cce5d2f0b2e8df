"""DVC projects in: ``dvc.yaml``, ``dvc.lock`` (schema '2.0', DVC 2 and 3),
``params.yaml`` and ``*.dvc`` files become runs and sources.

Each stage in ``dvc.lock`` is a run that happened: its command, its parameters
(the values the lock recorded from ``params.yaml`` and other parameter files),
its deps as inputs and outs as outputs. A dep or out is a source identified by
(project, path, md5): the out of one stage and the dep of the next share path
and md5, so they are one node and the pipeline shows up as a connected graph.
A ``.dvc`` file's outs are sources too; one with deps (``dvc import`` /
``import-url``) is a collection run.

A stage whose name (or, failing that, command) says it trains is a training
run. What else a project makes — dataset versions pinned by a ``strata.lock``
among a stage's deps, model versions from a training stage's outs — is added by
the apps above lineage through ``DVC_EXTENSIONS`` (the registry's is
``registry/services/dvc.py``), planned before anything is written.

Runs are keyed by a digest of what the lock says about them (project, stage,
command, params and every path with its md5): importing a newer lock adds runs
for the stages whose entries changed and leaves the others alone. A lock whose
stages form a cycle is refused with the cycle named, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from django.db import transaction

from catalog import permissions
from catalog.errors import UserError
from catalog.services.datasets import actor_name
from lineage.domain.graph import find_cycle
from lineage.models import RunStatus, StepKind
from lineage.services.runs import (
    Endpoint,
    RunResult,
    guess_step,
    node_for,
    run_import,
    source_endpoint,
)

_SKIP_DIRS = {".dvc", ".git", "node_modules", "__pycache__", ".venv"}


@dataclass(slots=True)
class DvcImport:
    """What an import did, for the command line's report."""

    project: str
    added: list[str] = field(default_factory=list)  # stage names recorded as new runs
    unchanged: list[str] = field(default_factory=list)  # stages already recorded as they are
    not_run: list[str] = field(default_factory=list)  # in dvc.yaml, not in dvc.lock
    data_files: int = 0  # *.dvc files read
    run_ids: list[int] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # model versions made by train stages (the registry)
    notes: list[str] = field(default_factory=list)  # what was read but not used, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "added": self.added,
            "unchanged": self.unchanged,
            "not_run": self.not_run,
            "data_files": self.data_files,
            "runs": self.run_ids,
            "models": self.models,
            "notes": self.notes,
        }


def step_for(stage: str, meta: Any = None, command: str = "") -> str:
    """A stage's step kind: `meta: {strata_step: dedup}` in dvc.yaml when given,
    else what its name suggests, else training when its command says train."""
    if isinstance(meta, dict) and isinstance(meta.get("strata_step"), str):
        return meta["strata_step"]
    step = guess_step(stage)
    if step == StepKind.OTHER and "train" in command.lower():
        return StepKind.TRAINING
    return step


def _load_yaml(path: Path, root: Path) -> Any:
    relative = path.relative_to(root)
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{relative} is not valid YAML{where}: fix it and import again.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{relative} cannot be read ({error.__class__.__name__}).") from None


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _lookup(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _digest_of(entry: dict[str, Any]) -> str:
    for key in ("md5", "etag", "checksum", "version_id"):
        if entry.get(key):
            return str(entry[key])
    return ""


class _Project:
    """Reads one DVC project folder and names its files' nodes."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.namespace = f"dvc://{name}"

    def endpoint(self, entry: Any, wdir: str, where: str) -> Endpoint:
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise UserError(f"{where} lists an entry without a path: each dep and out needs one.")
        raw_path = entry["path"]
        digest = _digest_of(entry)
        facets = {
            key: entry[key] for key in ("md5", "etag", "checksum", "size", "nfiles", "hash") if key in entry
        }
        if "://" in raw_path:
            scheme, _, rest = raw_path.partition("://")
            host, _, path = rest.partition("/")
            return source_endpoint(
                namespace=f"{scheme}://{host}", name=path, version_tag=digest, uri=raw_path, facets=facets
            )
        path = os.path.normpath(os.path.join(wdir, raw_path)).replace(os.sep, "/")
        if path.startswith("../"):
            raise UserError(f"{where} names {raw_path}, outside the project folder.")
        return source_endpoint(
            namespace=self.namespace,
            name=path,
            version_tag=digest,
            uri=f"{self.namespace}/{path}" + (f"@{digest}" if digest else ""),
            facets=facets,
        )


def _read_params(root: Path) -> dict[str, Any]:
    path = root / "params.yaml"
    if not path.exists():
        return {}
    data = _load_yaml(path, root)
    return data if isinstance(data, dict) else {}


def _stage_definitions(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "dvc.yaml"
    if not path.exists():
        return {}
    data = _load_yaml(path, root)
    if not isinstance(data, dict):
        raise UserError("dvc.yaml must be a mapping with a 'stages' section.")
    stages = data.get("stages") or {}
    if not isinstance(stages, dict):
        raise UserError("dvc.yaml's 'stages' must be a mapping of stage name to stage.")
    return {str(name): (body if isinstance(body, dict) else {}) for name, body in stages.items()}


def _lock_stages(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "dvc.lock"
    if not path.exists():
        return {}
    data = _load_yaml(path, root)
    if not isinstance(data, dict):
        raise UserError("dvc.lock must be a mapping with 'schema' and 'stages'.")
    schema = data.get("schema")
    if str(schema) != "2.0":
        raise UserError(
            f"dvc.lock has schema {schema!r}; Strata reads schema '2.0' (DVC 2 and 3): "
            "run `dvc repro` with a current DVC to rewrite it."
        )
    stages = data.get("stages") or {}
    if not isinstance(stages, dict):
        raise UserError("dvc.lock's 'stages' must be a mapping of stage name to stage.")
    for name, body in stages.items():
        if not isinstance(body, dict) or "cmd" not in body:
            raise UserError(f"dvc.lock stage {name!r} has no cmd: is the file complete?")
        for key in ("deps", "outs"):
            if body.get(key) is not None and not isinstance(body[key], list):
                raise UserError(f"dvc.lock stage {name!r}: {key} must be a list.")
        if body.get("params") is not None and not isinstance(body["params"], dict):
            raise UserError(f"dvc.lock stage {name!r}: params must map each parameter file to its values.")
    return {str(name): body for name, body in stages.items()}


def _definition_for(stage: str, definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """dvc.yaml's entry for a lock stage; 'build@uk' (foreach) and
    'train@lr-0.1' (matrix) come from the 'build' and 'train' entries."""
    return definitions.get(stage) or definitions.get(stage.split("@", 1)[0]) or {}


def _params_of(
    lock_stage: dict[str, Any], definition: dict[str, Any], params_file: dict[str, Any]
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for file_name, values in (lock_stage.get("params") or {}).items():
        flat: dict[str, Any] = {}
        _flatten("", values if isinstance(values, dict) else {}, flat)
        prefix = "" if file_name == "params.yaml" else f"{file_name}:"
        params.update({f"{prefix}{key}": value for key, value in flat.items()})
    if not params:
        # A lock written before the stage declared params: take today's values.
        for item in definition.get("params") or []:
            if isinstance(item, str):
                params[item] = _lookup(params_file, item)
    return params


def _command(cmd: Any) -> str:
    if isinstance(cmd, list):
        return "\n".join(str(part) for part in cmd)
    return str(cmd)


# One run to record: (stage, run key, the run's fields, inputs, outputs); the key
# is "" for data added with `dvc add`, whose outputs are sources with no run.
Planned = tuple[str, str, dict[str, Any], list[Endpoint], list[Endpoint]]


@dataclass(slots=True)
class DvcProject:
    """A DVC project as read, before anything is written: what an extension of
    the import (``DVC_EXTENSIONS``) sees and may add to."""

    root: Path
    name: str
    namespace: str  # of the project's files as sources: dvc://<name>
    definitions: dict[str, dict[str, Any]]  # dvc.yaml's stages
    planned: list[Planned]  # an extension may rewrite their endpoints in place
    user: permissions.User
    actor: str
    report: DvcImport

    def definition(self, stage: str) -> dict[str, Any]:
        return _definition_for(stage, self.definitions)

    def load_yaml(self, path: Path) -> Any:
        """A YAML file of the project, or a UserError naming it."""
        return _load_yaml(path, self.root)


# What the apps above lineage make of a project besides runs and sources: each
# is called with the project once it is read, before anything is written; it
# may rewrite the planned endpoints, and returns what to do after each stage's
# run is recorded, inside the import's transaction. The registry adds its own
# in RegistryConfig.ready() (pins from strata.lock files, model versions).
DVC_EXTENSIONS: list[Callable[[DvcProject], Callable[[str, RunResult], None]]] = []


def dvc_import(*, user: permissions.User, path: str, project: str = "", actor: str = "") -> DvcImport:
    """Import the DVC project in folder `path` (see the module's docstring)."""
    permissions.require_role(user, permissions.STEWARD, "import DVC projects")
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{path} is not a folder: give the DVC project's root folder.")
    root = root.resolve()
    name = (project or root.name).strip() or "project"
    definitions = _stage_definitions(root)
    lock = _lock_stages(root)
    data_files = _data_files(root)
    if not definitions and not lock and not data_files:
        raise UserError(f"{path} has no dvc.yaml, dvc.lock or .dvc files: is it a DVC project?")
    params_file = _read_params(root)
    reader = _Project(root, name)
    report = DvcImport(project=name, data_files=len(data_files))
    report.not_run = sorted(
        stage for stage in definitions if not any(s == stage or s.startswith(stage + "@") for s in lock)
    )
    who = actor_name(user, actor)
    planned = [
        _plan_lock_stage(reader, stage, body, _definition_for(stage, definitions), params_file, who)
        for stage, body in sorted(lock.items())
    ]
    planned += [_plan_data_file(reader, data_file, who) for data_file in data_files]
    _refuse_cycle(planned)
    read = DvcProject(
        root=root,
        name=name,
        namespace=reader.namespace,
        definitions=definitions,
        planned=planned,
        user=user,
        actor=who,
        report=report,
    )
    # What the apps above lineage make of the project (the registry: pins and
    # model versions), planned now, before anything is written.
    after_run: list[Callable[[str, RunResult], None]] = [extend(read) for extend in DVC_EXTENSIONS]
    _record(user, planned, after_run, report)
    return report


def _plan_lock_stage(
    reader: _Project,
    stage: str,
    body: dict[str, Any],
    definition: dict[str, Any],
    params_file: dict[str, Any],
    actor: str,
) -> Planned:
    """A stage of dvc.lock: a run that happened, keyed by what the lock says of it."""
    wdir = str(definition.get("wdir") or ".")
    where = f"dvc.lock stage {stage!r}"
    inputs = [reader.endpoint(entry, wdir, where) for entry in body.get("deps") or []]
    outputs = [reader.endpoint(entry, wdir, where) for entry in body.get("outs") or []]
    params = _params_of(body, definition, params_file)
    fields = {
        "step": step_for(stage, definition.get("meta"), _command(body["cmd"])),
        "name": stage,
        "namespace": reader.namespace,
        "params": params,
        "command": _command(body["cmd"]),
        "actor": actor,
        "status": RunStatus.COMPLETED,
        "origin": "dvc",
    }
    identity = {
        "project": reader.name,
        "stage": stage,
        "cmd": fields["command"],
        "params": params,
        "deps": sorted((e.name, e.version_tag) for e in inputs),
        "outs": sorted((e.name, e.version_tag) for e in outputs),
    }
    return (stage, _key(identity), fields, inputs, outputs)


def _record(
    user: permissions.User,
    planned: list[Planned],
    after_run: list[Callable[[str, RunResult], None]],
    report: DvcImport,
) -> None:
    """Write what was planned, in one transaction: each run (once: a run already
    recorded is left as it is) and what the extensions add to it."""
    with transaction.atomic():
        for stage, key, fields, inputs, outputs in planned:
            if not key:
                for endpoint in outputs:  # data added with `dvc add`: sources, no run
                    node_for(endpoint)
                continue
            result = run_import(user=user, key=key, fields=fields, inputs=inputs, outputs=outputs)
            (report.added if result.created else report.unchanged).append(stage)
            report.run_ids.append(result.run.node_id)
            for recorded in after_run:
                recorded(key, result)


def _plan_data_file(reader: _Project, data_file: Path, actor: str) -> Planned:
    """A .dvc file: a collection run when it has deps (`dvc import`), else its
    outs alone, as sources (`dvc add`)."""
    root = reader.root
    relative = data_file.relative_to(root).as_posix()
    body = _load_yaml(data_file, root)
    if not isinstance(body, dict):
        raise UserError(f"{relative} must be a mapping with 'outs'.")
    wdir = os.path.dirname(relative) or "."
    where = relative
    outputs = [reader.endpoint(entry, wdir, where) for entry in body.get("outs") or []]
    inputs = [reader.endpoint(entry, wdir, where) for entry in body.get("deps") or []]
    if not inputs:
        return ("", "", {}, [], outputs)
    stage = f"import {relative[: -len('.dvc')]}"
    fields = {
        "step": StepKind.COLLECTION,
        "name": stage,
        "namespace": reader.namespace,
        "params": {},
        "command": _command(body.get("cmd") or f"dvc import {relative}"),
        "actor": actor,
        "status": RunStatus.COMPLETED,
        "origin": "dvc",
    }
    identity = {
        "project": reader.name,
        "file": relative,
        "deps": sorted((e.name, e.version_tag) for e in inputs),
        "outs": sorted((e.name, e.version_tag) for e in outputs),
    }
    return (stage, _key(identity), fields, inputs, outputs)


def _data_files(root: Path) -> list[Path]:
    """Every *.dvc file below `root`, skipping DVC's own folder and the like."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        found += [Path(dirpath) / f for f in filenames if f.endswith(".dvc")]
    return sorted(found)


def _key(identity: dict[str, Any]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return "run:dvc:" + hashlib.sha256(canonical.encode()).hexdigest()


def _refuse_cycle(planned: list[Planned]) -> None:
    graph = nx.DiGraph()
    labels: dict[str, str] = {}
    for stage, key, _fields, inputs, outputs in planned:
        if not key:
            continue
        labels[key] = f"stage {stage}"
        for endpoint in inputs:
            labels[endpoint.key] = endpoint.name
            graph.add_edge(endpoint.key, key)
        for endpoint in outputs:
            labels[endpoint.key] = endpoint.name
            graph.add_edge(key, endpoint.key)
    cycle = find_cycle(graph)
    if cycle:
        raise UserError(
            "the DVC project's stages form a cycle ("
            + " → ".join(labels[str(node)] for node in cycle)
            + "); nothing was imported."
        )
