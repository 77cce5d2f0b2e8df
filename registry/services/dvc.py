"""What a DVC import makes besides runs: pins from strata.lock files, and model
versions from train stages.

``strata import-dvc`` reads the project and records its stages as runs
(``lineage/ingest/dvc.py``); the registry extends it here, through
``DVC_EXTENSIONS`` there (registered in ``RegistryConfig.ready()``):

- The exact dataset versions a training used come from a ``strata.lock``
  (written by ``strata lock``) among the deps of the train stage or of a stage
  upstream of it: its versions become inputs of the stage that reads it and pins
  of the model versions, under their roles (or dataset names). A lock naming
  versions this catalog lacks refuses the import.
- Each out of a training stage that looks like a model (``model.pkl``,
  ``*.onnx``, ``*.pt``, a ``models/`` folder…) is a model version — named
  ``<project>-<file stem>``, versioned by the first 12 digits of its md5, with
  the stage's parameters and the numbers in the metrics files ``dvc.yaml``
  declares for it (its own ``metrics``, those of stages that read the model, and
  the top-level ``metrics``). Its deps stay sources (DVC names content by md5,
  Strata by BLAKE3: they cannot be matched).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import networkx as nx
import yaml

from catalog import permissions
from catalog.errors import UserError
from lineage.ingest.dvc import DvcImport, DvcProject, Planned
from lineage.models import Node, StepKind
from lineage.services.runs import Endpoint, RunResult, version_endpoint
from registry.models import MODEL_NAME_RE, ModelVersion
from registry.services.locks import lock_check, lock_parse
from registry.services.training import Pin, check_metrics, model_key, pins_attach

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


def looks_like_model(path: str) -> bool:
    """model.pkl, weights/best.pt, models/ (a folder), classifier.onnx…"""
    pure = PurePosixPath(path)
    if pure.suffix.lower() in MODEL_SUFFIXES:
        return True
    return pure.stem.lower().startswith("model") or any(part.lower() in _MODEL_WORDS for part in pure.parts)


def train_stages(project: DvcProject) -> Callable[[str, RunResult], None]:
    """Plan the pins and model versions of `project` (see the module's
    docstring) before anything is written; returns what to do once each stage's
    run is recorded: pin the model versions it made, and report them."""
    pins_of = _pin_locked_versions(project)
    trained = _models_of_train_stages(project, pins_of)

    def recorded(key: str, result: RunResult) -> None:
        for model_endpoint, pins in trained.get(key, []):
            model = ModelVersion.objects.filter(node__key=model_endpoint.key).first()
            if model is None:  # a run recorded by an earlier import, before models were made
                continue
            if pins and result.created:
                pins_attach(model=model, run=result.run, pins=pins)
            if result.created:
                project.report.models.append(model.spec)

    return recorded


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


def _pin_locked_versions(project: DvcProject) -> dict[str, list[Pin]]:
    """Stages reading a strata.lock consume its dataset versions; returns each
    stage's pins by run key."""
    pins_of: dict[str, list[Pin]] = {}
    for _stage, key, _fields, inputs, _outputs in project.planned:
        if not key:
            continue
        pins: list[Pin] = []
        for endpoint in list(inputs):
            if endpoint.namespace != project.namespace:
                continue
            found = _lock_pins(project.root, endpoint, project.user, project.report)
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
    project: DvcProject, pins_of: dict[str, list[Pin]]
) -> dict[str, list[tuple[Endpoint, list[Pin]]]]:
    """Turn the model-like outs of training stages into model version endpoints
    (in place, wherever the same file appears), each with the pins of the
    strata.locks read by its stage or any stage upstream of it."""
    planned, report = project.planned, project.report
    graph = _stage_graph(planned)
    top_level = _top_level_metrics(project)
    trained: dict[str, list[tuple[Endpoint, list[Pin]]]] = {}
    replaced: dict[str, Endpoint] = {}
    for stage, key, fields, _inputs, outputs in planned:
        if not key or fields.get("step") != StepKind.TRAINING:
            continue
        pins = _upstream_pins(graph, key, pins_of)
        models = [e for e in outputs if looks_like_model(e.name)]
        for endpoint in models:
            digest = endpoint.version_tag.removesuffix(".dir")
            if not digest:
                report.notes.append(
                    f"{endpoint.name} of stage {stage} has no md5, so no model version was made."
                )
                continue
            metric_paths = _model_metric_paths(
                project, stage, endpoint, top_level if len(models) == 1 else []
            )
            model_endpoint = _model_endpoint(
                project,
                stage,
                endpoint,
                version=digest[:12],
                params=fields.get("params") or {},
                metrics=_read_metrics(project.root, metric_paths, report),
            )
            replaced[endpoint.key] = model_endpoint
            trained.setdefault(key, []).append((model_endpoint, pins))
    for _stage, _key, _fields, inputs, outputs in planned:
        for endpoints in (inputs, outputs):
            endpoints[:] = [replaced.get(e.key, e) for e in endpoints]
    return trained


def _stage_graph(planned: list[Planned]) -> nx.DiGraph:
    """The stages' runs by key, each with an edge to every stage that reads one of
    its outs."""
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
    return graph


def _upstream_pins(graph: nx.DiGraph, key: str, pins_of: dict[str, list[Pin]]) -> list[Pin]:
    """The pins of a stage and of the stages upstream of it, the first of each role."""
    pins: list[Pin] = []
    for upstream in [key, *sorted(nx.ancestors(graph, key))]:
        for pin in pins_of.get(upstream, []):
            if not any(p.role == pin.role for p in pins):
                pins.append(pin)
    return pins


def _model_metric_paths(
    project: DvcProject, stage: str, endpoint: Endpoint, top_level: list[str]
) -> list[str]:
    """The metrics files of a model: its stage's, those of the other stages that
    read it, then `top_level`."""
    definition = project.definition(stage)
    metric_paths = _metric_paths(definition.get("metrics"), str(definition.get("wdir") or "."))
    for other, body in project.definitions.items():
        deps = [
            os.path.normpath(os.path.join(str(body.get("wdir") or "."), d)).replace(os.sep, "/")
            for d in body.get("deps") or []
            if isinstance(d, str)
        ]
        if endpoint.name in deps and other != stage:
            metric_paths += _metric_paths(body.get("metrics"), str(body.get("wdir") or "."))
    return metric_paths + top_level


def _model_endpoint(
    project: DvcProject,
    stage: str,
    endpoint: Endpoint,
    *,
    version: str,
    params: dict[str, Any],
    metrics: dict[str, float],
) -> Endpoint:
    """The model version a training stage's out is, named after the project and
    the file."""
    name = _model_name(project.name, endpoint.name)
    return Endpoint(
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
            "metrics": metrics,
            "params": params,
            "artifact_uri": endpoint.uri,
            "description": f"Trained by stage {stage} of DVC project {project.name}.",
            "actor": project.actor,
            "origin": "dvc",
        },
    )


def _top_level_metrics(project: DvcProject) -> list[str]:
    path = project.root / "dvc.yaml"
    if not path.exists():
        return []
    data = project.load_yaml(path)
    return _metric_paths(data.get("metrics") if isinstance(data, dict) else None, ".")
