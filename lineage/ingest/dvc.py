"""DVC projects in: ``dvc.yaml``, ``dvc.lock`` (schema '2.0', DVC 2 and 3),
``params.yaml`` and ``*.dvc`` files become runs and sources.

Each stage in ``dvc.lock`` is a run that happened: its command, its parameters
(the values the lock recorded from ``params.yaml`` and other parameter files),
its deps as inputs and outs as outputs. A dep or out is a source identified by
(project, path, md5): the out of one stage and the dep of the next share path
and md5, so they are one node and the pipeline shows up as a connected graph.
A ``.dvc`` file's outs are sources too; one with deps (``dvc import`` /
``import-url``) is a collection run.

Training maps onto model versions: a stage whose name (or, failing that,
command) says it trains is a training run, and each of its outs that looks like
a model (``model.pkl``, ``*.onnx``, ``*.pt``, a ``models/`` folder…) is a model
version — named ``<project>-<file stem>``, versioned by the first 12 digits of
its md5, with the stage's parameters and the numbers in the metrics files
``dvc.yaml`` declares for it (its own ``metrics``, those of stages that read the
model, and the top-level ``metrics``). Its deps stay sources (DVC names content
by md5, Strata by BLAKE3: they cannot be matched). The exact dataset versions a
training used come from a ``strata.lock`` (written by ``strata lock``) among the
deps of the train stage or of a stage upstream of it: its versions become
inputs of the stage that reads it and pins of the model versions, under their
roles (or dataset names). A lock naming versions this catalog lacks refuses
the import.

Runs are keyed by a digest of what the lock says about them (project, stage,
command, params and every path with its md5): importing a newer lock adds runs
for the stages whose entries changed and leaves the others alone. A lock whose
stages form a cycle is refused with the cycle named, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import networkx as nx
import yaml
from django.db import transaction

from catalog import permissions
from catalog.services.datasets import actor_name
from catalog.services.errors import UserError
from lineage.domain.graph import find_cycle
from lineage.models import Node, RunStatus, StepKind
from lineage.services.runs import (
    Endpoint,
    guess_step,
    node_for,
    run_import,
    source_endpoint,
    version_endpoint,
)
from registry.models import MODEL_NAME_RE, ModelVersion
from registry.services.locks import lock_check, lock_parse
from registry.services.training import Pin, check_metrics, model_key, pins_attach

_SKIP_DIRS = {".dvc", ".git", "node_modules", "__pycache__", ".venv"}
# What a train stage's out looks like when it is a model.
MODEL_SUFFIXES = frozenset(
    {
        ".pkl",
        ".pickle",
        ".joblib",
        ".pt",
        ".pth",
        ".onnx",
        ".h5",
        ".hdf5",
        ".keras",
        ".safetensors",
        ".ckpt",
        ".pb",
        ".tflite",
        ".mlmodel",
        ".cbm",
        ".gguf",
        ".model",
    }
)
_MODEL_WORDS = frozenset({"model", "models", "weights", "checkpoint", "checkpoints"})


@dataclass(slots=True)
class DvcImport:
    """What an import did, for the command line's report."""

    project: str
    added: list[str] = field(default_factory=list)  # stage names recorded as new runs
    unchanged: list[str] = field(default_factory=list)  # stages already recorded as they are
    not_run: list[str] = field(default_factory=list)  # in dvc.yaml, not in dvc.lock
    data_files: int = 0  # *.dvc files read
    run_ids: list[int] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # model versions made by train stages
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


def looks_like_model(path: str) -> bool:
    """model.pkl, weights/best.pt, models/ (a folder), classifier.onnx…"""
    pure = PurePosixPath(path)
    if pure.suffix.lower() in MODEL_SUFFIXES:
        return True
    return pure.stem.lower().startswith("model") or any(part.lower() in _MODEL_WORDS for part in pure.parts)


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

    planned: list[tuple[str, str, dict[str, Any], list[Endpoint], list[Endpoint]]] = []
    for stage, body in sorted(lock.items()):
        definition = _definition_for(stage, definitions)
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
            "actor": actor_name(user, actor),
            "status": RunStatus.COMPLETED,
            "origin": "dvc",
        }
        identity = {
            "project": name,
            "stage": stage,
            "cmd": fields["command"],
            "params": params,
            "deps": sorted((e.name, e.version_tag) for e in inputs),
            "outs": sorted((e.name, e.version_tag) for e in outputs),
        }
        planned.append((stage, _key(identity), fields, inputs, outputs))

    for data_file in data_files:
        relative = data_file.relative_to(root).as_posix()
        body = _load_yaml(data_file, root)
        if not isinstance(body, dict):
            raise UserError(f"{relative} must be a mapping with 'outs'.")
        wdir = os.path.dirname(relative) or "."
        where = relative
        outputs = [reader.endpoint(entry, wdir, where) for entry in body.get("outs") or []]
        inputs = [reader.endpoint(entry, wdir, where) for entry in body.get("deps") or []]
        if inputs:
            stage = f"import {relative[: -len('.dvc')]}"
            fields = {
                "step": StepKind.COLLECTION,
                "name": stage,
                "namespace": reader.namespace,
                "params": {},
                "command": _command(body.get("cmd") or f"dvc import {relative}"),
                "actor": actor_name(user, actor),
                "status": RunStatus.COMPLETED,
                "origin": "dvc",
            }
            identity = {
                "project": name,
                "file": relative,
                "deps": sorted((e.name, e.version_tag) for e in inputs),
                "outs": sorted((e.name, e.version_tag) for e in outputs),
            }
            planned.append((stage, _key(identity), fields, inputs, outputs))
        else:
            planned.append(("", "", {}, [], outputs))

    _refuse_cycle(planned)
    pins_of = _pin_locked_versions(root, reader, planned, user, report)
    trained = _models_of_train_stages(
        root, name, planned, definitions, pins_of, actor_name(user, actor), report
    )
    with transaction.atomic():
        for stage, key, fields, inputs, outputs in planned:
            if not key:
                for endpoint in outputs:  # data added with `dvc add`: sources, no run
                    node_for(endpoint)
                continue
            result = run_import(user=user, key=key, fields=fields, inputs=inputs, outputs=outputs)
            (report.added if result.created else report.unchanged).append(stage)
            report.run_ids.append(result.run.node_id)
            for model_endpoint, pins in trained.get(key, []):
                model = ModelVersion.objects.filter(node__key=model_endpoint.key).first()
                if model is None:  # a run recorded by an earlier import, before models were made
                    continue
                if pins and result.created:
                    pins_attach(model=model, run=result.run, pins=pins)
                if result.created:
                    report.models.append(model.spec)
    return report


# -- training: strata.lock pins and model outs ----------------------------------------


def _md5_matches(data: bytes, recorded: str) -> bool:
    """DVC 3 hashes a file's bytes; DVC 2 hashed text files with CRLF made LF."""
    if not recorded:
        return True
    recorded = recorded.removesuffix(".dir")
    return recorded in (hashlib.md5(data).hexdigest(), hashlib.md5(data.replace(b"\r\n", b"\n")).hexdigest())


def _lock_pins(root: Path, endpoint: Endpoint, user: permissions.User, report: DvcImport) -> list[Pin] | None:
    """The pins of a strata.lock the project depends on; None when the dep is
    not a strata lock (poetry.lock, package-lock.json…)."""
    path = PurePosixPath(endpoint.name)
    if path.suffix != ".lock" or path.name == "dvc.lock":
        return None
    file = root / endpoint.name
    if not file.is_file():
        return None
    data = file.read_bytes()
    try:
        parsed = yaml.safe_load(data)
    except yaml.YAMLError:
        return None
    if not isinstance(parsed, dict) or "strata_lock" not in parsed:
        return None
    if not _md5_matches(data, endpoint.version_tag):
        report.notes.append(
            f"{endpoint.name} changed after dvc.lock recorded it: its pins were not used (run `dvc repro`)."
        )
        return None
    lock = lock_parse(data.decode("utf-8", errors="replace"), name=endpoint.name)
    checked, _warnings = lock_check(user=user, lock=lock, name=endpoint.name)
    return [
        Pin(
            role=item.entry.role or item.entry.dataset,
            version=item.version,
            requested=f"{endpoint.name}: {item.entry.dataset}@{item.version.semver}",
        )
        for item in checked
    ]


def _pin_locked_versions(
    root: Path,
    reader: _Project,
    planned: list[tuple[str, str, dict[str, Any], list[Endpoint], list[Endpoint]]],
    user: permissions.User,
    report: DvcImport,
) -> dict[str, list[Pin]]:
    """Stages reading a strata.lock consume its dataset versions; returns each
    stage's pins by run key."""
    pins_of: dict[str, list[Pin]] = {}
    for _stage, key, _fields, inputs, _outputs in planned:
        if not key:
            continue
        pins: list[Pin] = []
        for endpoint in list(inputs):
            if endpoint.namespace != reader.namespace:
                continue
            found = _lock_pins(root, endpoint, user, report)
            for pin in found or []:
                if any(p.version.pk == pin.version.pk for p in pins):
                    continue
                pins.append(pin)
                inputs.append(version_endpoint(pin.version))
        if pins:
            pins_of[key] = pins
    return pins_of


def _model_name(project: str, path: str) -> str:
    pure = PurePosixPath(path)
    stem = pure.stem if pure.suffix else pure.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{project}-{stem}").strip("-._")[:100]
    return name if MODEL_NAME_RE.match(name) else "model"


def _flatten_numbers(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten_numbers(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, int | float) and not isinstance(value, bool) and prefix:
        out.setdefault(prefix, value)


def _metric_paths(entries: Any, wdir: str) -> list[str]:
    paths = []
    for item in entries or []:
        raw = (
            item if isinstance(item, str) else (next(iter(item)) if isinstance(item, dict) and item else None)
        )
        if isinstance(raw, str):
            paths.append(os.path.normpath(os.path.join(wdir, raw)).replace(os.sep, "/"))
    return paths


def _read_metrics(root: Path, paths: list[str], report: DvcImport) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for relative in paths:
        file = root / relative
        if relative.startswith("../") or not file.is_file():
            continue
        try:
            text = file.read_text(encoding="utf-8")
            data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
            report.notes.append(f"{relative} could not be read as JSON or YAML metrics.")
            continue
        _flatten_numbers("", data, metrics)
    try:
        return check_metrics({key: value for key, value in metrics.items() if len(key) <= 100})
    except UserError:
        return {}


def _models_of_train_stages(
    root: Path,
    project: str,
    planned: list[tuple[str, str, dict[str, Any], list[Endpoint], list[Endpoint]]],
    definitions: dict[str, dict[str, Any]],
    pins_of: dict[str, list[Pin]],
    actor: str,
    report: DvcImport,
) -> dict[str, list[tuple[Endpoint, list[Pin]]]]:
    """Turn the model-like outs of training stages into model version endpoints
    (in place, wherever the same file appears), each with the pins of the
    strata.locks read by its stage or any stage upstream of it."""
    graph = nx.DiGraph()
    producer: dict[str, str] = {}
    for _stage, key, _fields, _inputs, outputs in planned:
        if key:
            graph.add_node(key)
            for endpoint in outputs:
                producer[endpoint.key] = key
    for _stage, key, _fields, inputs, _outputs in planned:
        for endpoint in inputs if key else []:
            if endpoint.key in producer:
                graph.add_edge(producer[endpoint.key], key)
    top_level = _top_level_metrics(root)
    trained: dict[str, list[tuple[Endpoint, list[Pin]]]] = {}
    replaced: dict[str, Endpoint] = {}
    for stage, key, fields, _inputs, outputs in planned:
        if not key or fields.get("step") != StepKind.TRAINING:
            continue
        pins: list[Pin] = []
        for upstream in [key, *sorted(nx.ancestors(graph, key))]:
            for pin in pins_of.get(upstream, []):
                if not any(p.role == pin.role for p in pins):
                    pins.append(pin)
        definition = _definition_for(stage, definitions)
        wdir = str(definition.get("wdir") or ".")
        models = [e for e in outputs if looks_like_model(e.name)]
        for endpoint in models:
            digest = endpoint.version_tag.removesuffix(".dir")
            if not digest:
                report.notes.append(
                    f"{endpoint.name} of stage {stage} has no md5, so no model version was made."
                )
                continue
            metric_paths = _metric_paths(definition.get("metrics"), wdir)
            for other, body in definitions.items():
                deps = [
                    os.path.normpath(os.path.join(str(body.get("wdir") or "."), d)).replace(os.sep, "/")
                    for d in body.get("deps") or []
                    if isinstance(d, str)
                ]
                if endpoint.name in deps and other != stage:
                    metric_paths += _metric_paths(body.get("metrics"), str(body.get("wdir") or "."))
            if len(models) == 1:
                metric_paths += top_level
            name, version = _model_name(project, endpoint.name), digest[:12]
            model_endpoint = Endpoint(
                key=model_key(name, version),
                kind=Node.Kind.MODEL,
                label=f"{name}@{version}",
                uri=endpoint.uri,
                namespace=endpoint.namespace,
                name=endpoint.name,
                version_tag=endpoint.version_tag,
                model={
                    "name": name,
                    "version": version,
                    "metrics": _read_metrics(root, metric_paths, report),
                    "params": fields.get("params") or {},
                    "artifact_uri": endpoint.uri,
                    "description": f"Trained by stage {stage} of DVC project {project}.",
                    "actor": actor,
                    "origin": "dvc",
                },
            )
            replaced[endpoint.key] = model_endpoint
            trained.setdefault(key, []).append((model_endpoint, pins))
    for _stage, _key, _fields, inputs, outputs in planned:
        for endpoints in (inputs, outputs):
            endpoints[:] = [replaced.get(e.key, e) for e in endpoints]
    return trained


def _top_level_metrics(root: Path) -> list[str]:
    path = root / "dvc.yaml"
    if not path.exists():
        return []
    data = _load_yaml(path, root)
    return _metric_paths(data.get("metrics") if isinstance(data, dict) else None, ".")


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


def _refuse_cycle(planned: list[tuple[str, str, dict[str, Any], list[Endpoint], list[Endpoint]]]) -> None:
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
