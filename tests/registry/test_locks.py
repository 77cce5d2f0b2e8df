"""Lock files: `strata lock` writes the exact versions down, `strata reproduce`
brings back the same bytes — a month later, after main moved — or refuses,
writing nothing."""

from __future__ import annotations

import itertools
from datetime import timedelta
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from catalog.models import Chunk, Version
from catalog.selectors import resolve_spec
from catalog.store import get_backend
from registry.services.locks import LockRefused, NeedsRestore, lock_build, lock_parse
from registry.services.training import training_record
from strata_store.backends import COLD
from tests.factories.files import tree_digests, write_random

_counter = itertools.count()


def _folder(tmp_path: Path, seed: int) -> Path:
    """A small dataset folder: a table, a nested binary file, a link."""
    folder = tmp_path / "sources" / f"data-{next(_counter)}"
    (folder / "images").mkdir(parents=True)
    (folder / "train.csv").write_text(
        "id,label\n" + "".join(f"{i},{'ab'[(i + seed) % 2]}\n" for i in range(200))
    )
    write_random(folder / "images" / "blob.bin", 300_000 + seed, seed)
    (folder / "latest.csv").symlink_to("train.csv")
    return folder


@pytest.fixture
def roles(transactional_db):
    """Tests that run the command line in a process flush the database after
    them, role groups made by a migration included: make them again first."""
    from django.contrib.auth.models import Group

    for name in ("viewer", "steward", "approver", "admin"):
        Group.objects.get_or_create(name=name)


@pytest.fixture
def push(personas):
    from catalog.services.versions import version_push

    def push(dataset: str, folder: Path) -> Version:
        return version_push(path=str(folder), dataset_name=dataset, user=personas["alice"]).version

    return push


def _run(*args: str) -> str:
    out = StringIO()
    call_command("strata", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_reproducing_a_month_old_lock_gives_back_the_same_bytes_after_main_moved(
    roles, store_url, personas, push, tmp_path, cli
):
    month_ago = timezone.now() - timedelta(days=31)
    # A training run a month ago: the clock says so for everything it records.
    with mock.patch("django.utils.timezone.now", return_value=month_ago):
        train_folder, eval_folder = _folder(tmp_path, 1), _folder(tmp_path, 2)
        train = push("reviews", train_folder)
        evaluation = push("reviews-eval", eval_folder)
        model = training_record(
            user=personas["alice"],
            model="fraud",
            version="3.1",
            datasets={"train": "reviews@main", "eval": "reviews-eval@main"},
            metrics={"auc": 0.91},
        ).model
        lock_path = tmp_path / "strata.lock"
        _run("lock", "--model", "fraud@3.1", "-o", str(lock_path))
    assert model.created == month_ago and train.created == month_ago
    lock = yaml.safe_load(lock_path.read_text())
    assert lock["created"] == month_ago.isoformat(timespec="seconds") and lock["model"] == "fraud@3.1"
    assert {(d["role"], d["version"], d["tree"]) for d in lock["datasets"]} == {
        ("train", train.id, train.tree_id),
        ("eval", evaluation.id, evaluation.tree_id),
    }
    # Since then: newer versions were pushed and main moved on.
    push("reviews", _folder(tmp_path, 3))
    push("reviews-eval", _folder(tmp_path, 4))
    assert resolve_spec("reviews@main")[1].pk != train.pk

    dest = tmp_path / "reproduced"
    result = cli("reproduce", str(lock_path), str(dest))
    assert result.returncode == 0, result.stderr
    assert "every byte verified" in result.stdout
    assert tree_digests(dest / "train") == tree_digests(train_folder)
    assert tree_digests(dest / "eval") == tree_digests(eval_folder)
    assert sorted(p.name for p in dest.iterdir()) == ["eval", "train"]
    # The same from the model alone, without a lock.
    by_model = tmp_path / "by-model"
    result = cli("reproduce", "--model", "fraud@3.1", str(by_model))
    assert result.returncode == 0, result.stderr
    assert tree_digests(by_model / "train") == tree_digests(train_folder)


def test_a_lock_of_datasets_names_each_folder_by_its_dataset(store_url, personas, push, tmp_path):
    reviews_folder = _folder(tmp_path, 5)
    push("reviews", reviews_folder)
    push("reviews-eval", _folder(tmp_path, 6))
    lock_path = tmp_path / "strata.lock"
    _run("lock", "reviews@main", "reviews-eval@1.0.0", "-o", str(lock_path))
    text = lock_path.read_text()
    assert text.startswith(
        "# strata.lock: the exact dataset versions reviews@1.0.0, reviews-eval@1.0.0 used."
    )
    assert "requested: reviews@main" in text
    dest = tmp_path / "out"
    _run("reproduce", str(lock_path), str(dest))
    assert sorted(p.name for p in dest.iterdir()) == ["reviews", "reviews-eval"]
    assert tree_digests(dest / "reviews") == tree_digests(reviews_folder)
    with pytest.raises(Exception, match="not empty"):
        _run("reproduce", str(lock_path), str(dest))
    _run("reproduce", str(lock_path), str(dest), "--force")
    assert tree_digests(dest / "reviews") == tree_digests(reviews_folder)


def _tamper(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def test_a_lock_with_an_unknown_version_or_a_tampered_digest_is_refused_and_nothing_written(
    roles, store_url, personas, push, tmp_path, cli
):
    train = push("reviews", _folder(tmp_path, 7))
    other = push("reviews", _folder(tmp_path, 8))
    lock_path = tmp_path / "strata.lock"
    _run("lock", f"reviews@{train.semver}", "-o", str(lock_path))
    good = lock_path.read_text()
    cases = {
        "unknown": (_tamper(good, train.id, "f" * 64), "which this catalog does not have"),
        # A digest that is real (another version's tree), just not this version's.
        "tampered": (_tamper(good, train.tree_id, other.tree_id), "does not match the version's tree"),
        "semver": (_tamper(good, f"semver: {train.semver}", "semver: 9.9.9"), "not 9.9.9 as the lock says"),
        "garbage": (
            "strata_lock: 1\ndatasets:\n- dataset: reviews\n  version: xyz\n",
            "64 hexadecimal digits",
        ),
    }
    for name, (text, reason) in cases.items():
        bad = tmp_path / f"{name}.lock"
        bad.write_text(text)
        dest = tmp_path / f"dest-{name}"
        result = cli("reproduce", str(bad), str(dest))
        assert result.returncode == 2, (name, result.stderr)
        assert reason in result.stderr, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
        assert not dest.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".strata-reproduce-")]


def test_the_lock_check_gives_every_reason_at_once(personas, push, tmp_path, local_store):
    train = push("reviews", _folder(tmp_path, 9))
    evaluation = push("reviews-eval", _folder(tmp_path, 10))
    lock = lock_build(user=None, specs=["reviews@main", "reviews-eval@main"])
    lock.entries[0].version = "0" * 64
    lock.entries[1].tree = train.tree_id
    from registry.services.locks import lock_check

    with pytest.raises(LockRefused) as refused:
        lock_check(user=None, lock=lock)
    message = str(refused.value)
    assert message.startswith("refusing strata.lock, nothing was written:")
    assert "which this catalog does not have" in message and f"tree {evaluation.tree_id[:12]}" in message


def test_a_rolled_back_version_is_reproduced_with_a_warning(personas, push, tmp_path, local_store):
    folder = _folder(tmp_path, 11)
    train = push("reviews", folder)
    Version.objects.filter(pk=train.pk).update(rolled_back=True, rolled_back_reason="labels were shuffled")
    lock_path = tmp_path / "strata.lock"
    _run("lock", "reviews@1.0.0", "-o", str(lock_path))
    err = StringIO()
    call_command("strata", "reproduce", str(lock_path), str(tmp_path / "out"), stdout=StringIO(), stderr=err)
    assert (
        "warning: reviews@1.0.0 was rolled back: labels were shuffled. Reproducing it anyway"
        in err.getvalue()
    )
    assert tree_digests(tmp_path / "out" / "reviews") == tree_digests(folder)


def test_cold_data_says_how_long_a_restore_takes_and_restores_on_request(
    personas, push, tmp_path, local_store
):
    folder = _folder(tmp_path, 12)
    train = push("reviews", folder)
    backend = get_backend()
    packs = set(Chunk.objects.values_list("pack_id", flat=True))
    for pack_id in packs:
        backend.set_tier(pack_id, COLD)
    backend.restore_seconds = 3 * 3600  # as long as a Glacier standard retrieval
    lock_path = tmp_path / "strata.lock"
    _run("lock", "reviews@main", "-o", str(lock_path))
    dest = tmp_path / "out"
    with pytest.raises(NeedsRestore) as refused:
        _run("reproduce", str(lock_path), str(dest))
    message = str(refused.value)
    assert f"of {train} is in cold storage; a restore takes about 3 h" in message
    assert "Run again with --restore" in message and "nothing was written" in message
    assert not dest.exists()

    backend.restore_seconds = 0.3
    err = StringIO()
    call_command(
        "strata",
        "reproduce",
        str(lock_path),
        str(dest),
        "--restore",
        "--poll",
        "0.1",
        stdout=StringIO(),
        stderr=err,
    )
    assert "Requested restores" in err.getvalue() and "Restored" in err.getvalue()
    assert tree_digests(dest / "reviews") == tree_digests(folder)
    assert all(backend.restore_state(pack_id).readable for pack_id in packs)


def test_a_restore_in_progress_says_when_it_will_be_ready(personas, push, tmp_path, local_store):
    push("reviews", _folder(tmp_path, 13))
    backend = get_backend()
    backend.restore_seconds = 2 * 3600
    for pack_id in set(Chunk.objects.values_list("pack_id", flat=True)):
        backend.set_tier(pack_id, COLD)
        backend.request_restore(pack_id)
    lock_path = tmp_path / "strata.lock"
    _run("lock", "reviews@main", "-o", str(lock_path))
    with pytest.raises(
        NeedsRestore, match=r"is being restored from cold storage; ready in about (1 h 59 min|2 h)"
    ):
        _run("reproduce", str(lock_path), str(tmp_path / "out"))


@pytest.mark.parametrize(
    "text, reason",
    [
        ("datasets: [1\n", "is not valid YAML at line"),
        ("name: something\n", "is not a strata lock"),
        ("strata_lock: 2\ndatasets: []\n", "this Strata reads format 1"),
        ("strata_lock: 1\ndatasets: []\n", "lists no datasets"),
    ],
)
def test_a_lock_that_is_not_one_is_refused_with_one_sentence(text, reason):
    with pytest.raises(LockRefused, match=reason):
        lock_parse(text)


def test_lock_needs_something_to_lock_and_refuses_two_versions_in_one_folder(
    personas, push, tmp_path, local_store
):
    push("reviews", _folder(tmp_path, 14))
    push("reviews", _folder(tmp_path, 15))
    with pytest.raises(Exception, match="name what to lock"):
        _run("lock", "-o", str(tmp_path / "x.lock"))
    with pytest.raises(Exception, match="would both be written to reviews/"):
        _run("lock", "reviews@1.0.0", "reviews@1.1.0", "-o", str(tmp_path / "x.lock"))
    assert not (tmp_path / "x.lock").exists()
    printed = _run("lock", "reviews@1.0.0", "-o", "-")
    assert printed.startswith("# strata.lock") and "strata_lock: 1" in printed
