"""Importing DVC projects built here: dvc.yaml, dvc.lock (as DVC 3 writes it),
params.yaml and data/*.dvc files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from catalog.errors import UserError
from lineage.models import Edge, Node, Run, Source
from registry.models import ModelVersion

ROOT = Path(__file__).resolve().parents[2]
RAW_MD5 = "e5ebd4c02cefbe7955977c67ada242b7"
PREPARED_MD5 = "153aad06d376b6595932470e459ef42a.dir"
LABELS_MD5 = "0b3fd8e1b1e5a2a43b7c9a0e6f1d2c3b"
MODEL_MD5 = "9f1c2a7d4b8e3f6a5c0d1e2f3a4b5c6d"
NEW_MODEL_MD5 = "1a2b3c4d5e6f708192a3b4c5d6e7f809"


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def lock(lr: float, model_md5: str) -> str:
    return f"""
        schema: '2.0'
        stages:
          prepare:
            cmd: python src/prepare.py data/raw.csv data/prepared
            deps:
            - path: data/raw.csv
              hash: md5
              md5: {RAW_MD5}
              size: 14445097
            - path: src/prepare.py
              hash: md5
              md5: f09ea0c15980b43010257ccb9f0055e2
              size: 1576
            params:
              params.yaml:
                prepare.seed: 20170428
                prepare.split: 0.2
            outs:
            - path: data/prepared
              hash: md5
              md5: {PREPARED_MD5}
              size: 8437363
              nfiles: 2
          train:
            cmd:
            - python src/train.py data/prepared model.pkl
            - python src/score.py model.pkl
            deps:
            - path: data/prepared
              hash: md5
              md5: {PREPARED_MD5}
              size: 8437363
              nfiles: 2
            - path: data/labels.csv
              hash: md5
              md5: {LABELS_MD5}
              size: 5120
            params:
              params.yaml:
                train.lr: {lr}
                train.n_est: 50
            outs:
            - path: model.pkl
              hash: md5
              md5: {model_md5}
              size: 6216
        """


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "fraud-pipeline"
    write(
        folder,
        "dvc.yaml",
        """
        stages:
          prepare:
            cmd: python src/prepare.py data/raw.csv data/prepared
            deps: [data/raw.csv, src/prepare.py]
            params: [prepare.seed, prepare.split]
            outs: [data/prepared]
          train:
            cmd:
            - python src/train.py data/prepared model.pkl
            - python src/score.py model.pkl
            deps: [data/prepared, data/labels.csv]
            params: [train.lr, train.n_est]
            outs: [model.pkl]
          evaluate:
            cmd: python src/evaluate.py model.pkl
            deps: [model.pkl]
        """,
    )
    write(folder, "dvc.lock", lock(0.01, MODEL_MD5))
    write(
        folder, "params.yaml", "prepare:\n  seed: 20170428\n  split: 0.2\ntrain:\n  lr: 0.01\n  n_est: 50\n"
    )
    write(
        folder,
        "data/raw.csv.dvc",
        f"""
        outs:
        - md5: {RAW_MD5}
          size: 14445097
          hash: md5
          path: raw.csv
        """,
    )
    write(
        folder,
        "data/labels.csv.dvc",
        f"""
        md5: 3c1e9b0d2a4f5e6d7c8b9a0f1e2d3c4b
        frozen: true
        deps:
        - path: https://labels.example.org/fraud/labels.csv
          etag: '"6a1b2c3d-1400"'
          size: 5120
        outs:
        - md5: {LABELS_MD5}
          size: 5120
          hash: md5
          path: labels.csv
        """,
    )
    write(folder, ".dvc/config", "[core]\n    remote = storage\n")
    return folder


def import_dvc(path: Path, *extra: str) -> dict:
    out = StringIO()
    call_command("strata", "import-dvc", str(path), "--json", *extra, stdout=out)
    return json.loads(out.getvalue())


def source(path: str, md5: str) -> Node:
    return Node.objects.get(
        source__namespace="dvc://fraud-pipeline", source__name=path, source__version_tag=md5
    )


def test_a_dvc_project_becomes_its_pipeline_graph_with_parameters(db, project):
    report = import_dvc(project)
    assert sorted(report["added"]) == ["import data/labels.csv", "prepare", "train"]
    assert report["not_run"] == ["evaluate"] and report["data_files"] == 2
    prepare = Run.objects.get(name="prepare")
    train = Run.objects.get(name="train")
    assert prepare.params == {"prepare.seed": 20170428, "prepare.split": 0.2}
    assert train.params == {"train.lr": 0.01, "train.n_est": 50}
    assert prepare.step == "cleaning" and train.step == "training" and prepare.origin == "dvc"
    assert train.command == "python src/train.py data/prepared model.pkl\npython src/score.py model.pkl"
    raw = source("data/raw.csv", RAW_MD5)
    prepared = source("data/prepared", PREPARED_MD5)
    labels = source("data/labels.csv", LABELS_MD5)
    # The train stage's model.pkl is a model version, not a plain source.
    model = Node.objects.get(kind="model", model_version__name="fraud-pipeline-model")
    assert model.label == f"fraud-pipeline-model@{MODEL_MD5[:12]}"
    remote = Node.objects.get(source__uri="https://labels.example.org/fraud/labels.csv")
    importer = Run.objects.get(step="collection")
    edges = set(Edge.objects.values_list("src_id", "dst_id"))
    assert {
        (raw.pk, prepare.node_id),
        (prepare.node_id, prepared.pk),
        (prepared.pk, train.node_id),
        (labels.pk, train.node_id),
        (train.node_id, model.pk),
        (remote.pk, importer.node_id),
        (importer.node_id, labels.pk),
    } <= edges
    # The .dvc file of data/raw.csv names the very node prepare reads.
    assert Source.objects.filter(name="data/raw.csv").count() == 1
    assert source("data/prepared", PREPARED_MD5).source.facets["nfiles"] == 2


def test_importing_a_newer_lock_adds_only_the_new_runs(db, project):
    import_dvc(project)
    runs_before = set(Run.objects.values_list("node_id", flat=True))
    again = import_dvc(project)
    assert again["added"] == [] and len(again["unchanged"]) == 3
    assert set(Run.objects.values_list("node_id", flat=True)) == runs_before
    write(project, "dvc.lock", lock(0.05, NEW_MODEL_MD5))
    newer = import_dvc(project)
    assert newer["added"] == ["train"]
    assert Run.objects.count() == len(runs_before) + 1
    new_train = Run.objects.filter(name="train").order_by("-node_id").first()
    assert new_train.params["train.lr"] == 0.05
    # The new run reads the same prepared data: the graph forks, nothing is duplicated.
    prepared = source("data/prepared", PREPARED_MD5)
    assert prepared.out_edges.count() == 2
    assert ModelVersion.objects.filter(name="fraud-pipeline-model").count() == 2
    assert not Source.objects.filter(name="model.pkl").exists()


def test_a_cycle_in_the_lock_is_reported_and_nothing_imported(db, tmp_path):
    folder = tmp_path / "loop"
    write(
        folder,
        "dvc.lock",
        """
        schema: '2.0'
        stages:
          a:
            cmd: make b
            deps: [{path: x.csv, md5: aaaa}]
            outs: [{path: y.csv, md5: bbbb}]
          b:
            cmd: make a
            deps: [{path: y.csv, md5: bbbb}]
            outs: [{path: x.csv, md5: aaaa}]
        """,
    )
    with pytest.raises(UserError, match=r"stages form a cycle \(.*stage a.*→.*\); nothing was imported"):
        import_dvc(folder)
    assert not Node.objects.exists()


@pytest.mark.parametrize(
    "files, reason",
    [
        ({}, "has no dvc.yaml, dvc.lock or .dvc files"),
        ({"dvc.lock": "schema: '1.0'\nstages: {}\n"}, "Strata reads schema '2.0'"),
        ({"dvc.lock": "schema: '2.0'\nstages:\n  a: [1\n"}, "dvc.lock is not valid YAML at line"),
        ({"dvc.lock": "schema: '2.0'\nstages:\n  a: {deps: []}\n"}, "stage 'a' has no cmd"),
        ({"dvc.lock": "schema: '2.0'\nstages:\n  a: {cmd: x, outs: [{md5: abc}]}\n"}, "without a path"),
        (
            {"dvc.lock": "schema: '2.0'\nstages:\n  a: {cmd: x, outs: [{path: ../../etc/passwd, md5: a}]}\n"},
            "outside the project",
        ),
    ],
)
def test_a_broken_project_is_refused_with_one_sentence(db, tmp_path, files, reason):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(UserError, match=reason):
        import_dvc(folder)
    assert not Node.objects.exists()


def test_the_command_line_exits_2_with_one_sentence(transactional_db, tmp_path, settings):
    from tests.workers import database_url

    folder = tmp_path / "loop"
    write(
        folder,
        "dvc.lock",
        """
        schema: '2.0'
        stages:
          a: {cmd: a, deps: [{path: x, md5: '1'}], outs: [{path: y, md5: '2'}]}
          b: {cmd: b, deps: [{path: y, md5: '2'}], outs: [{path: x, md5: '1'}]}
        """,
    )
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        STORAGE_URL=f"file://{tmp_path / 'store'}",
        STRATA_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )
    for args, reason in [
        ([str(folder)], "stages form a cycle"),
        ([str(tmp_path / "missing")], "is not a folder"),
    ]:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "strata", "import-dvc", *args],
            env=env,
            capture_output=True,
            text=True,
            cwd=str(ROOT),
        )
        assert result.returncode == 2, result.stderr
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- training stages: model versions and the dataset versions they were pinned to ----------


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def trained_project(tmp_path, make_version):
    """A DVC project whose fetch stage materialises a strata.lock (with `strata
    reproduce`) and whose fit stage — named 'build', but its command trains —
    writes models/classifier.onnx and metrics.json."""
    from registry.services.locks import lock_build, lock_write

    reviews = make_version("reviews", stage="split")
    folder = tmp_path / "churn"
    folder.mkdir()
    lock_write(lock_build(user=None, specs=["reviews@main"]), str(folder / "strata.lock"))
    write(folder, "metrics.json", '{"auc": 0.88, "per_class": {"f1": 0.7}, "note": "fine", "ok": true}\n')
    write(
        folder,
        "dvc.yaml",
        """
        stages:
          fetch:
            cmd: python manage.py strata reproduce strata.lock data
            deps: [strata.lock]
            outs: [data]
          build:
            cmd: python src/train.py data models/classifier.onnx
            deps: [data, src/train.py]
            params: [train.lr]
            outs: [models/classifier.onnx]
            metrics:
            - metrics.json:
                cache: false
        """,
    )
    write(folder, "params.yaml", "train:\n  lr: 0.2\n")
    write(
        folder,
        "dvc.lock",
        f"""
        schema: '2.0'
        stages:
          fetch:
            cmd: python manage.py strata reproduce strata.lock data
            deps:
            - path: strata.lock
              hash: md5
              md5: {_md5(folder / "strata.lock")}
            outs:
            - path: data
              hash: md5
              md5: 0a1b2c3d4e5f60718293a4b5c6d7e8f9.dir
          build:
            cmd: python src/train.py data models/classifier.onnx
            deps:
            - path: data
              hash: md5
              md5: 0a1b2c3d4e5f60718293a4b5c6d7e8f9.dir
            - path: src/train.py
              hash: md5
              md5: 11111111111111111111111111111111
            params:
              params.yaml:
                train.lr: 0.2
            outs:
            - path: models/classifier.onnx
              hash: md5
              md5: {MODEL_MD5}
            - path: metrics.json
              hash: md5
              md5: {_md5(folder / "metrics.json")}
        """,
    )
    return folder, reviews


def test_a_train_stage_becomes_a_training_run_and_its_model_a_pinned_model_version(db, trained_project):
    folder, reviews = trained_project
    report = import_dvc(folder)
    assert report["models"] == [f"churn-classifier@{MODEL_MD5[:12]}"] and report["notes"] == []
    build = Run.objects.get(name="build")
    assert build.step == "training"  # its name says nothing, its command says train
    model = ModelVersion.objects.get()
    assert model.name == "churn-classifier" and model.version == MODEL_MD5[:12] and model.origin == "dvc"
    assert model.metrics == {"auc": 0.88, "per_class.f1": 0.7}
    assert model.params == {"train.lr": 0.2}
    assert model.artifact_uri == f"dvc://churn/models/classifier.onnx@{MODEL_MD5}"
    # The pins come from the strata.lock the fetch stage reads: the exact version.
    pin = model.pins.get()
    assert pin.version_id == reviews.id and pin.role == "reviews" and pin.run.node_id == build.node_id
    fetch = Run.objects.get(name="fetch")
    reviews_node = Node.objects.get(version=reviews)
    assert Edge.objects.filter(src=reviews_node, dst_id=fetch.node_id).exists()
    assert Edge.objects.filter(src_id=build.node_id, dst_id=model.node_id).exists()
    # Importing again adds nothing.
    again = import_dvc(folder)
    assert again["models"] == [] and ModelVersion.objects.count() == 1


def test_a_strata_lock_edited_after_dvc_recorded_it_pins_nothing_and_says_so(db, trained_project):
    folder, _ = trained_project
    with open(folder / "strata.lock", "a") as handle:
        handle.write("# edited\n")
    report = import_dvc(folder)
    assert "strata.lock changed after dvc.lock recorded it" in report["notes"][0]
    assert ModelVersion.objects.get().pins.count() == 0


def test_a_strata_lock_naming_versions_the_catalog_lacks_refuses_the_import(db, trained_project):
    folder, reviews = trained_project
    lock_path = folder / "strata.lock"
    lock_path.write_text(lock_path.read_text().replace(reviews.id, "e" * 64))
    text = (folder / "dvc.lock").read_text()
    (folder / "dvc.lock").write_text(text.replace(text.split("md5: ")[1].split("\n")[0], _md5(lock_path), 1))
    with pytest.raises(UserError, match="which this catalog does not have"):
        import_dvc(folder)
    assert not Run.objects.exists()
