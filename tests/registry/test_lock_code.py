"""Locks restore code as well as data: each entry names the code its version was
made with, the lock names the model's code, and `strata reproduce` says what to
check out — or, with --code-dir, checks the model's commit out in a clone, after
checking before any data is written that it can."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from catalog.models import Version
from registry.services.locks import LockRefused, lock_build, lock_check, lock_dump, lock_parse
from registry.services.training import training_record
from tests.factories.files import tree_digests

_counter = itertools.count()
CLEANING = "https://git.example.org/data/cleaning"
TRAINING = "https://git.example.org/ml/fraud"


@pytest.fixture
def roles(transactional_db):
    """A command line run in a process flushes the database, role groups too."""
    from django.contrib.auth.models import Group

    for name in ("viewer", "steward", "approver", "admin"):
        Group.objects.get_or_create(name=name)


@pytest.fixture
def push(personas, tmp_path):
    from catalog.services.versions import version_push

    def push(dataset: str, content: str, code: str = "") -> tuple[Version, Path]:
        folder = tmp_path / "sources" / f"{dataset}-{next(_counter)}"
        folder.mkdir(parents=True)
        (folder / "data.csv").write_text(content)
        version = version_push(
            path=str(folder), dataset_name=dataset, user=personas["alice"], code=code
        ).version
        return version, folder

    return push


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "alice",
            "GIT_AUTHOR_EMAIL": "alice@example.org",
            "GIT_COMMITTER_NAME": "alice",
            "GIT_COMMITTER_EMAIL": "alice@example.org",
        },
    )
    return done.stdout.strip()


@pytest.fixture
def clone(tmp_path) -> tuple[Path, str, str]:
    """A git repository of training code with two commits: (folder, first, second)."""
    folder = tmp_path / "fraud-code"
    folder.mkdir()
    _git(folder, "init", "--quiet")
    (folder / "train.py").write_text("learning_rate = 0.1\n")
    _git(folder, "add", "train.py")
    _git(folder, "commit", "--quiet", "-m", "first")
    first = _git(folder, "rev-parse", "HEAD")
    (folder / "train.py").write_text("learning_rate = 0.05\n")
    _git(folder, "commit", "--quiet", "-am", "second")
    return folder, first, _git(folder, "rev-parse", "HEAD")


def _model(personas, commit: str) -> None:
    training_record(
        user=personas["alice"],
        model="fraud",
        version="3.1",
        datasets={"train": "reviews@main", "eval": "reviews-eval@main"},
        metrics={"auc": 0.91},
        code=f"{TRAINING}#{commit}",
    )


def test_a_lock_records_the_code_of_its_versions_and_model_and_reads_them_back(personas, push, local_store):
    train, _ = push("reviews", "id\n1\n", code=f"{CLEANING}#3f2a9c1")
    push("reviews-eval", "id\n2\n")
    _model(personas, "4c1d2e9")
    lock = lock_build(user=None, model="fraud@3.1")
    text = lock_dump(lock)
    data = yaml.safe_load(text)
    assert data["code"] == f"{TRAINING}#4c1d2e9"
    by_role = {entry["role"]: entry for entry in data["datasets"]}
    assert by_role["train"]["code"] == f"{CLEANING}#3f2a9c1" and "code" not in by_role["eval"]

    read = lock_parse(text)
    assert read.code == f"{TRAINING}#4c1d2e9"
    assert {entry.role: entry.code for entry in read.entries} == {"train": train.code, "eval": ""}
    checked, _ = lock_check(user=None, lock=read)
    assert len(checked) == 2

    # A lock written before code references existed is read as it always was.
    older = {**data, "datasets": [{k: v for k, v in e.items() if k != "code"} for e in data["datasets"]]}
    del older["code"]
    read = lock_parse(yaml.safe_dump(older))
    assert read.code == "" and all(entry.code == "" for entry in read.entries)
    assert len(lock_check(user=None, lock=read)[0]) == 2


def test_a_lock_with_a_bad_or_edited_code_reference_is_refused(personas, push, local_store):
    push("reviews", "id\n1\n", code=f"{CLEANING}#3f2a9c1")
    text = lock_dump(lock_build(user=None, specs=["reviews@main"]))
    with pytest.raises(LockRefused, match=r"dataset 1 \(reviews\): '#3f2a9c1' is not a code reference"):
        lock_parse(text.replace(f"{CLEANING}#3f2a9c1", "'#3f2a9c1'"))
    with pytest.raises(LockRefused, match="code must be written REPOSITORY#COMMIT"):
        lock_parse(text.replace(f"code: {CLEANING}#3f2a9c1", "code: [1, 2]"))
    edited = lock_parse(text.replace("#3f2a9c1", "#0000000"))
    with pytest.raises(LockRefused, match=f"was made with code {CLEANING}#3f2a9c1, not {CLEANING}#0000000"):
        lock_check(user=None, lock=edited)


def test_reproduce_names_the_code_and_checks_the_models_commit_out_in_a_clone(
    roles, personas, push, clone, tmp_path, cli
):
    folder, first, second = clone
    _, train_folder = push("reviews", "id\n1\n", code=f"{CLEANING}#3f2a9c1")
    push("reviews-eval", "id\n2\n")
    _model(personas, first)
    lock_path = tmp_path / "strata.lock"
    locked = cli("lock", "--model", "fraud@3.1", "-o", str(lock_path))
    assert locked.returncode == 0, locked.stderr
    assert f"code of fraud@3.1: {TRAINING} @ {first}" in locked.stdout

    # Without --code-dir: the data, and what code to check out beside it.
    result = cli("reproduce", str(lock_path), str(tmp_path / "plain"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("Code to check out:")
    assert "model fraud@3.1" in lines[at + 1] and lines[at + 1].endswith(f"{TRAINING} @ {first}")
    assert "train/" in lines[at + 2] and lines[at + 2].endswith(f"{CLEANING} @ 3f2a9c1")
    assert len(lines) == at + 3  # the eval data was pushed without code
    assert _git(folder, "rev-parse", "HEAD") == second

    # With it: the clone's HEAD is detached at the model's commit.
    dest = tmp_path / "reproduced"
    result = cli("reproduce", str(lock_path), str(dest), "--code-dir", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    assert _git(folder, "rev-parse", "HEAD") == first
    detached = subprocess.run(
        ["git", "-C", str(folder), "symbolic-ref", "--quiet", "HEAD"], capture_output=True
    )
    assert detached.returncode == 1
    assert (folder / "train.py").read_text() == "learning_rate = 0.1\n"
    assert tree_digests(dest / "train") == tree_digests(train_folder)
    answer = json.loads(result.stdout)
    assert answer["code"] == f"{TRAINING}#{first}"
    assert answer["checked_out"] == {"dir": str(folder), "commit": first}
    assert {entry["role"]: entry.get("code", "") for entry in answer["datasets"]} == {
        "train": f"{CLEANING}#3f2a9c1",
        "eval": "",
    }


def test_reproduce_refuses_a_code_dir_it_cannot_check_out_before_writing_any_data(
    roles, personas, push, clone, tmp_path, cli
):
    folder, first, second = clone
    push("reviews", "id\n1\n")
    push("reviews-eval", "id\n2\n")
    _model(personas, first)
    lock_path = tmp_path / "strata.lock"
    cli("lock", "--model", "fraud@3.1", "-o", str(lock_path), check=True)
    not_a_clone = tmp_path / "plain-folder"
    not_a_clone.mkdir()
    (not_a_clone / "notes.txt").write_text("not code")

    missing_commit = tmp_path / "other.lock"
    missing_commit.write_text(lock_path.read_text().replace(first, "0" * 40))
    dirty = tmp_path / "dirty"
    _git(tmp_path, "clone", "--quiet", str(folder), str(dirty))
    (dirty / "train.py").write_text("learning_rate = 1\n")
    cases = [
        (lock_path, not_a_clone, f"{not_a_clone} is not a git repository: clone {TRAINING} there first"),
        (lock_path, tmp_path / "nowhere", "is not a folder"),
        (missing_commit, folder, f"does not hold commit {'0' * 40} of {TRAINING}: fetch it there first"),
        (lock_path, dirty, "has uncommitted changes a checkout could overwrite"),
    ]
    for lock, code_dir, reason in cases:
        dest = tmp_path / "dest"
        result = cli("reproduce", str(lock), str(dest), "--code-dir", str(code_dir))
        assert result.returncode == 2, (code_dir, result.stdout, result.stderr)
        message = result.stderr.strip()
        assert message.startswith("error: ") and "\n" not in message, message
        assert reason in message and message.endswith("nothing was written."), message
        assert not dest.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".strata-reproduce-")]
    assert _git(folder, "rev-parse", "HEAD") == second

    # A lock of datasets alone names no model code to check out.
    datasets_only = tmp_path / "datasets.lock"
    cli("lock", "reviews@main", "-o", str(datasets_only), check=True)
    err = StringIO()
    with pytest.raises(Exception, match="records no code reference for a model"):
        call_command(
            "strata",
            "reproduce",
            str(datasets_only),
            str(tmp_path / "dest"),
            "--code-dir",
            str(folder),
            stdout=StringIO(),
            stderr=err,
        )
    assert not (tmp_path / "dest").exists()
