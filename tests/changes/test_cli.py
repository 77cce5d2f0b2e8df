"""`strata protect` and `strata change …` as a user runs them: a real process."""

from __future__ import annotations

import json

import pytest

# Tasks run in the command's own process, as the embedded defaults' worker would.
EAGER = {"CELERY_TASK_ALWAYS_EAGER": "true"}


def _write(folder, text: str) -> str:
    folder.mkdir(parents=True)
    (folder / "labels.csv").write_text(text)
    return str(folder)


@pytest.mark.parametrize("store_url", ["local"], indirect=True)  # the stores are tested elsewhere
def test_protect_refuse_a_push_open_show_and_merge_a_change(cli, tmp_path):
    cli("push", _write(tmp_path / "v0", "id,label\n1,cat\n"), "reviews", check=True)
    cli("branch", "reviews", "relabel", check=True)
    protected = cli("protect", "reviews", "main", "--approvals", "0", check=True)
    assert "changes only through change requests" in protected.stdout

    refused = cli("push", _write(tmp_path / "v1", "id,label\n1,dog\n"), "reviews")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: branch main of reviews is protected: push to another branch")

    cli("push", _write(tmp_path / "v2", "id,label\n1,lynx\n"), "reviews", "--branch", "relabel", check=True)
    opened = cli("change", "open", "reviews", "relabel", "--title", "Lynx", "--code", "https://git.example.org/x#abc",
                 env_extra=EAGER, check=True)  # fmt: skip
    assert opened.stdout.startswith("Opened change request #")
    number = opened.stdout.split("#")[1].split(":")[0]

    shown = json.loads(cli("change", "show", number, "--json", check=True).stdout)
    assert shown["mergeable"], shown["blockers"]
    assert {c["name"] for c in shown["checks"]} >= {"merge", "schema contract"}

    merged = cli("change", "merge", number, check=True)
    assert f"Merged change request #{number} as reviews@" in merged.stdout
    listed = json.loads(cli("change", "list", "reviews", "--state", "merged", "--json", check=True).stdout)
    assert [c["id"] for c in listed] == [int(number)]

    bad = cli("change", "show", "999")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: there is no change request #999."
