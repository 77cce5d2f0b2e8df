"""A CI job fails when a lock pins data that is not merged or was rolled back.

The server says whether a version is in a branch's history
(`GET /datasets/{name}/versions/{version}/on/{branch}`); the client reads the
lock and asks it (`strata_client.locks.lock_check`, `strata-client lock-check`).
The client's transport here is the API in this process, so both halves run."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import Dataset, Version
from catalog.services.merges import merge_branches
from catalog.services.refs import branch_create
from registry.services.locks import lock_build, lock_dump
from strata_client import cli as client_cli
from strata_client.errors import ClientError, error_from_answer
from strata_client.locks import LockedVersion, lock_check, lock_versions
from tests.factories.datasets import push


class InProcess:
    """The client's transport, answered by the API of this process."""

    def __init__(self, api) -> None:
        self.api = api

    def call(self, method: str, path: str, *, body=None, params=None, headers=None, retry=None):
        response = getattr(self.api, method.lower())(path, body)
        if response.status_code >= 400:
            raise error_from_answer(response.status_code, response.content)
        return response.status_code, response.json()


class FakeClient:
    """A client whose transport is the API of this process, as bob (a viewer)."""

    def __init__(self, api) -> None:
        self.transport = InProcess(api("bob"))


@pytest.fixture
def history(personas, local_store, tmp_path):
    """`pets`: 1.0.0 on main; exp/relabel from it with 1.1.0; main moved to 1.2.0;
    `lonely`: 1.0.0 on main, 1.1.0 on a branch never merged."""
    alice = personas["alice"]
    first = push(tmp_path, "pets", {"a.txt": "a\n"}, user=alice)
    pets = Dataset.objects.get(name="pets")
    branch_create(user=alice, dataset=pets, name="exp/relabel", start=first)
    relabelled = push(tmp_path, "pets", {"a.txt": "a\n", "b.txt": "b\n"}, user=alice, branch="exp/relabel")
    moved = push(tmp_path, "pets", {"a.txt": "a\n", "c.txt": "c\n"}, user=alice)
    push(tmp_path, "lonely", {"x.txt": "x\n"}, user=alice)
    lonely = Dataset.objects.get(name="lonely")
    branch_create(user=alice, dataset=lonely, name="side", start=lonely.branches.get(name="main").head)
    astray = push(tmp_path, "lonely", {"x.txt": "y\n"}, user=alice, branch="side")
    return {"first": first, "relabelled": relabelled, "moved": moved, "astray": astray}


def _on(api, dataset: str, version: Version | str, branch: str):
    version_id = version if isinstance(version, str) else version.id
    return api("bob").get(f"/datasets/{dataset}/versions/{version_id}/on/{branch}")


def test_a_version_is_on_a_branch_when_it_is_the_head_or_an_ancestor_over_both_parents(api, history):
    first, relabelled, moved = history["first"], history["relabelled"], history["moved"]
    answer = _on(api, "pets", moved, "main")
    assert answer.status_code == 200
    assert answer.json() == {"version": moved.id, "branch": "main", "on_branch": True, "rolled_back": False}
    assert _on(api, "pets", first, "main").json()["on_branch"] is True
    assert _on(api, "pets", first, "exp/relabel").json()["on_branch"] is True
    assert _on(api, "pets", relabelled, "exp/relabel").json()["on_branch"] is True
    assert _on(api, "pets", relabelled, "main").json()["on_branch"] is False
    assert _on(api, "pets", moved, "exp/relabel").json()["on_branch"] is False
    # Any ref names the version asked about.
    assert _on(api, "pets", "1.1.0", "main").json()["version"] == relabelled.id

    merged = merge_branches(user=None, dataset_name="pets", source="exp/relabel", author="alice").version
    assert merged is not None and merged.merge_parent_id == relabelled.id
    # Merged: now an ancestor of main's head through the merge's second parent.
    assert _on(api, "pets", relabelled, "main").json()["on_branch"] is True

    Version.objects.filter(pk=first.pk).update(rolled_back=True, rolled_back_reason="bad labels")
    assert _on(api, "pets", first, "main").json() == {
        "version": first.id,
        "branch": "main",
        "on_branch": True,
        "rolled_back": True,
    }
    missing = _on(api, "pets", first, "nope")
    assert missing.status_code == 404 and missing.json() == {"error": "dataset pets has no branch nope."}
    assert _on(api, "ghost", first, "main").status_code == 404


def _lock_file(tmp_path, specs: list[str], name: str = "strata.lock"):
    path = tmp_path / name
    path.write_text(lock_dump(lock_build(user=None, specs=specs)))
    return path


def test_lock_check_lists_every_version_not_merged_or_rolled_back(api, history, tmp_path):
    client = FakeClient(api)
    good = _lock_file(tmp_path, ["pets@main", "lonely@main"], "good.lock")
    assert lock_check(client, str(good)) == []

    relabelled, first = history["relabelled"], history["first"]
    bad = _lock_file(tmp_path, ["pets@exp/relabel", "lonely@side"], "bad.lock")
    problems = lock_check(client, str(bad), target="main")
    assert problems == [
        f"pets@1.1.0 ({relabelled.id[:12]}) is not on branch main of pets: merge it into main, "
        "or lock a version that is.",
        f"lonely@1.1.0 ({history['astray'].id[:12]}) is not on branch main of lonely: merge it into main, "
        "or lock a version that is.",
    ]
    # Against the branch they are on, they pass.
    assert (
        lock_check(client, str(_lock_file(tmp_path, ["pets@exp/relabel"], "exp.lock")), "exp/relabel") == []
    )

    Version.objects.filter(pk=first.pk).update(rolled_back=True, rolled_back_reason="bad labels")
    old = _lock_file(tmp_path, ["pets@1.0.0"], "old.lock")
    assert lock_check(client, str(old)) == [
        f"pets@1.0.0 ({first.id[:12]}) was rolled back: lock another version."
    ]
    assert lock_check(client, str(good), target="release") == [
        "pets@1.2.0 cannot be checked: dataset pets has no branch release.",
        "lonely@1.0.0 cannot be checked: dataset lonely has no branch release.",
    ]


def test_the_lock_check_command_exits_0_1_or_2_for_a_ci_job(api, history, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(client_cli, "Client", lambda url, token: FakeClient(api))
    good = _lock_file(tmp_path, ["pets@main"], "good.lock")
    bad = _lock_file(tmp_path, ["pets@exp/relabel"], "bad.lock")

    def run(*args: str) -> tuple[int, str, str]:
        code = client_cli.main(["--url", "http://strata.invalid", "--token", "strata_x", "lock-check", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run(str(good))
    assert code == 0 and out.startswith(f"OK: every version {good} pins is on main")
    code, out, _ = run(str(bad))
    assert code == 1 and "is not on branch main of pets" in out
    assert run(str(bad), "--target", "exp/relabel")[0] == 0
    code, out, _ = run(str(bad), "--json")
    assert code == 1 and len(json.loads(out)["problems"]) == 1
    not_a_lock = tmp_path / "notes.txt"
    not_a_lock.write_text("hello: world\n")
    for path, reason in [
        (tmp_path / "none.lock", "there is no lock file"),
        (not_a_lock, "is not a strata lock"),
    ]:
        code, out, err = run(str(path))
        assert code == 2 and out == "" and reason in err and err.count("\n") == 1, err


# -- reading a lock without a YAML library -----------------------------------------------


def test_the_client_reads_every_lock_strata_writes(personas, local_store, tmp_path):
    push(tmp_path, "reviews", {"a.txt": "a\n"}, user=personas["alice"], code="https://git.example.org/x#1a")
    push(tmp_path, "reviews-eval", {"a.txt": "b\n"}, user=personas["alice"])
    text = lock_dump(lock_build(user=None, specs=["reviews@main", "reviews-eval@1.0.0"]))
    loaded = yaml.safe_load(text)
    assert [(v.dataset, v.version, v.semver) for v in lock_versions(text)] == [
        (entry["dataset"], entry["version"], entry["semver"]) for entry in loaded["datasets"]
    ]
    # Indented lists, comments, quotes and document markers, as a person might write them.
    version = loaded["datasets"][0]["version"]
    hand = (
        "---\n# pinned for the release\nstrata_lock: 1  # format\nmodel: 'fraud@3.1'\ndatasets:\n"
        f"  - role: \"train\"\n    dataset: reviews   # the main data\n    version: '{version}'\n"
        "    semver: 1.0.0\n...\n"
    )
    assert lock_versions(hand) == [LockedVersion("reviews", version, "1.0.0", "train")]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("datasets: [1\n", "line 1 is not written as `strata lock` writes a lock"),
        ("name: something\n", "is not a strata lock"),
        ("strata_lock: 2\ndatasets: []\n", "this client reads format 1"),
        ("strata_lock: 1\ndatasets: []\n", "lists no datasets"),
        ("strata_lock: 1\ndatasets:\n- dataset: reviews\n  version: xyz\n", "64 hexadecimal digits"),
        ("strata_lock: 1\ndatasets:\n- dataset: a\n    version: b\n", "line 4 is not written"),
        ("strata_lock: 1\ndatasets:\n- dataset: &a x\n", "line 3 is not written"),
        ("strata_lock: 1\nstrata_lock: 1\n", "gives strata_lock twice"),
    ],
)
def test_text_that_is_not_a_lock_is_refused_in_one_sentence(text, reason):
    with pytest.raises(ClientError, match=reason):
        lock_versions(text)


_VALUES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(
    ["1.0.0", "yes", "null", "~", "", "a # b", "a#b", "'q'", '"q"', "x: y", "- x", "0x1f", "12"]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {
                "role": _VALUES,
                "dataset": _VALUES,
                "semver": _VALUES,
                "version": st.sampled_from(["a" * 64, "0" * 64, "1234" * 16]) | _VALUES,
                "requested": _VALUES,
                "code": _VALUES,
            }
        ),
        min_size=1,
        max_size=3,
    ),
    model=_VALUES,
)
def test_the_client_reads_a_lock_as_yaml_does_or_refuses_it(entries, model):
    """Property: whatever strings a lock holds, the client's reading is YAML's, or
    a refusal in one sentence — never a different value."""
    text = yaml.safe_dump(
        {"strata_lock": 1, "created": "2026-01-01T00:00:00+00:00", "model": model, "datasets": entries},
        sort_keys=False,
        allow_unicode=True,
    )
    try:
        read = lock_versions(text)
    except ClientError as refused:
        assert "\n" not in str(refused)
        return
    loaded = yaml.safe_load(text)["datasets"]
    assert [(v.dataset, v.version, v.semver, v.role) for v in read] == [
        (e["dataset"], e["version"], e["semver"] or "", e["role"] or "") for e in loaded
    ]
