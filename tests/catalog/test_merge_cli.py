"""`strata merge` as a user runs it: a real process, exit codes, text and JSON."""

from __future__ import annotations

import json

import pytest


def _write(folder, files: dict[str, str]) -> str:
    folder.mkdir(parents=True)
    for path, content in files.items():
        (folder / path).write_text(content)
    return str(folder)


@pytest.mark.parametrize("store_url", ["local"], indirect=True)  # the stores are tested elsewhere
def test_strata_merge_dry_run_conflicts_strategy_and_merge(cli, tmp_path):
    cli("push", _write(tmp_path / "v0", {"labels.csv": "id,label\n1,cat\n2,dog\n"}), "reviews", check=True)
    cli("branch", "reviews", "relabel", check=True)
    cli("push", _write(tmp_path / "v1", {"labels.csv": "id,label\n1,lynx\n2,dog\n"}), "reviews", check=True)
    cli(
        "push", _write(tmp_path / "v2", {"labels.csv": "id,label\n1,puma\n2,wolf\n"}), "reviews",
        "--branch", "relabel", check=True,
    )  # fmt: skip

    dry = cli("merge", "reviews", "relabel", "--key", "id", "--dry-run")
    assert dry.returncode == 1
    assert "labels.csv key '1', column 'label': cell" in dry.stdout
    assert dry.stderr.startswith("error: 1 conflict; nothing was merged.")

    as_json = cli("merge", "reviews", "relabel", "--key", "labels.csv=id", "--dry-run", "--json")
    assert json.loads(as_json.stdout)["conflicts"][0]["column"] == "label"

    bad = cli("merge", "reviews", "relabel", "--strategy", "ours")
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "error: 'ours' is not a merge strategy: use source or target."
    )

    merged = cli(
        "merge", "reviews", "relabel", "--key", "id", "--strategy", "target", "-m", "Keep main's labels"
    )
    assert merged.returncode == 0, merged.stderr
    assert "Merged as reviews@1.3.0" in merged.stdout and "parents 1.1.0 and 1.2.0" in merged.stdout

    log = json.loads(cli("log", "reviews", "--json", check=True).stdout)
    assert log[0]["message"] == "Keep main's labels"
    assert (
        log[0]["merge_parent"]
        == json.loads(cli("log", "reviews", "--branch", "relabel", "--json").stdout)[0]["id"]
    )
    pulled = cli("pull", "reviews", str(tmp_path / "out"), check=True)
    assert pulled.returncode == 0
    assert (tmp_path / "out" / "labels.csv").read_text() == "id,label\n1,lynx\n2,wolf\n"
