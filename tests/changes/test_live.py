"""A change request's whole life as a CI system and its people live it: a live
server, a real Celery worker, the client, and examples/ci_pipeline.py run as a CI
job would run it."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from tests.factories.files import ROOT
from tests.workers import wait_until

CI_SCRIPT = ROOT / "examples" / "ci_pipeline.py"
CHECK = "train-and-evaluate"
BUILTIN = {
    "merge",
    "schema contract",
    "split leakage",
    "golden rule",
    "semantic version",
    "card completeness",
}
TABLE = ["--table", "labels.csv", "--label", "label", "--features", "temperature,vibration,pressure"]


def readings(rows: int, seed: int, *, ok_above: float | None = None) -> str:
    """labels.csv of machine readings: a machine is faulty when it runs hot and
    shakes. `ok_above` is a labeller who calls every machine vibrating above it ok."""
    rng = random.Random(seed)
    lines = ["id,temperature,vibration,pressure,label"]
    for row in range(rows):
        temperature, vibration = round(rng.uniform(20, 90), 2), round(rng.uniform(0, 10), 2)
        label = "faulty" if temperature / 10 + vibration > 11 else "ok"
        if ok_above is not None and vibration > ok_above:
            label = "ok"
        lines.append(f"{row},{temperature},{vibration},{round(rng.uniform(1, 5), 2)},{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ci(strata_server, tokens, tmp_path):
    """Run the CI example as a CI job does, with a steward's token; (exit code, output)."""

    def run(*args: str) -> tuple[int, str]:
        env = dict(
            os.environ,
            STRATA_URL=strata_server.url,
            STRATA_TOKEN=tokens["alice"],
            STRATA_CLIENT_CACHE=str(tmp_path / "ci-cache"),
            PYTHONPATH=str(ROOT),
        )
        done = subprocess.run(
            [sys.executable, str(CI_SCRIPT), *TABLE, "--eval", "machines-eval@main", *args],
            env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    return run


@pytest.mark.parametrize("store_url", ["s3"], indirect=True)  # the story once, on S3
def test_a_regression_ci_reports_needs_an_approver_and_a_new_push_needs_another(
    strata_server, tokens, tmp_path, ci
):
    from strata_client import Client, ClientError, Conflict, Forbidden
    from strata_client.lineage import model_version

    alice = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "alice"))
    carol = Client(strata_server.url, tokens["carol"], cache_dir=str(tmp_path / "carol"))

    def folder(name: str, labels: str) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "labels.csv").write_text(labels)
        return str(tmp_path / name)

    alice.push(folder("eval", readings(200, seed=2)), "machines-eval", message="Held-out readings")
    main = alice.push(folder("v1", readings(300, seed=1)), "machines", message="Readings, labelled")
    code, out = ci("--data", "machines@main", "--register", "fault-detector@1.0")
    assert code == 0, out
    baseline = model_version(alice, "fault-detector@1.0")["metrics"]["accuracy"]
    assert baseline > 0.95
    alice.transport.call(
        "PUT",
        "/datasets/machines/protections/main",
        body={"required_checks": [CHECK], "required_approvals": 0, "regression": "approve"},
    )
    with pytest.raises(ClientError, match="protected"):
        alice.push(folder("direct", readings(300, seed=1, ok_above=5)), "machines")

    # A steward proposes labels from a labeller who calls every strong vibration ok.
    alice.transport.call("POST", "/datasets/machines/branches", body={"name": "relabel", "start": "main"})
    first = alice.push(folder("v2", readings(300, seed=1, ok_above=8)), "machines", branch="relabel")
    number = alice.open_change("machines", "relabel", title="Relabel by vendor B")["id"]
    assert [listed["id"] for listed in alice.changes("machines")] == [number]

    def checked(head: str) -> dict:
        change = alice.change(number)
        names = {check["name"] for check in change["checks"]}
        return change if change["head"] == head and names >= BUILTIN else {}

    change = wait_until(lambda: checked(first.version), 30, "the worker's checks")
    assert all(c["state"] == "passed" for c in change["checks"]), change["checks"]
    assert change["blockers"] == [f"the required check {CHECK} has not reported on this head."]

    code, out = ci("--change", str(number), "--model", "fault-detector")
    assert code == 0, out
    assert "metric gate: needs_approval" in out
    change = alice.change(number)
    checks = {check["name"]: check for check in change["checks"]}
    reported = checks[CHECK]
    assert (reported["state"], reported["head"], reported["model"]) == (
        "passed",
        first.version,
        "fault-detector",
    )
    assert reported["metrics"]["accuracy"] < baseline - 0.01
    assert checks["metric gate"]["state"] == "needs_approval"
    assert "fault-detector@1.0 accuracy" in checks["metric gate"]["summary"]
    assert not change["mergeable"]
    assert change["blockers"] == ["it needs 1 approval on this head, and has 0."]
    with pytest.raises(Conflict, match="cannot merge yet"):
        alice.merge_change(number)
    with pytest.raises(Forbidden, match="author"):
        alice.approve(number)
    assert carol.approve(number, "A known trade-off; vendor B is retrained next week.")["mergeable"]

    # A new push makes the approval stale, and the checks run again on the new head.
    second = alice.push(folder("v3", readings(300, seed=1, ok_above=9)), "machines", branch="relabel")
    change = wait_until(lambda: checked(second.version), 30, "the checks of the new head")
    assert (change["approvals"], change["stale_approvals"]) == ([], 1)
    assert change["blockers"] == [f"the required check {CHECK} has not reported on this head."]
    with pytest.raises(Conflict, match="run it again on the new head"):
        alice.report_check(number, CHECK, "passed", metrics={"accuracy": 0.99}, head=first.version)
    code, out = ci("--change", str(number), "--model", "fault-detector")
    assert code == 0, out
    change = alice.change(number)
    assert change["blockers"] == ["it needs 1 approval on this head, and has 0."]
    accuracy = next(c for c in change["checks"] if c["name"] == CHECK)["metrics"]["accuracy"]
    assert carol.approve(number)["mergeable"]

    assert alice.merge_change(number)["state"] == "merging"
    change = wait_until(lambda: (c := alice.change(number))["state"] == "merged" and c, 30, "the merge")
    _, merged = alice.transport.call("GET", f"/datasets/machines/versions/{change['merged_version']}")
    assert (merged["parent"], merged["merge_parent"]) == (main.version, second.version)
    assert alice.resolve("machines@main") == change["merged_version"]
    assert alice.changes("machines") == []
    assert [listed["id"] for listed in alice.changes("machines", "merged")] == [number]

    code, out = ci("--change", str(number), "--register", "fault-detector@1.1")
    assert code == 0, out
    _, registered = alice.transport.call("GET", "/models/fault-detector/versions/1.1")
    pins = {pin["role"]: pin for pin in registered["datasets"]}
    assert (pins["train"]["dataset"], pins["train"]["version"]) == ("machines", change["merged_version"])
    assert (pins["eval"]["dataset"], pins["eval"]["evaluation"]) == ("machines-eval", True)
    assert registered["metrics"] == {"accuracy": accuracy}
    assert registered["flagged"] and registered["predecessor"] == "fault-detector@1.0"


@pytest.mark.parametrize("store_url", ["local"], indirect=True)  # input checks: one store is enough
def test_the_ci_example_fails_a_table_whose_schema_does_not_fit(strata_server, tokens, tmp_path, ci):
    from strata_client import Client

    alice = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "alice"))
    for name, dataset, labels in [
        ("eval", "machines-eval", readings(50, seed=2)),
        ("v1", "machines", readings(50, seed=1)),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "labels.csv").write_text(labels)
        alice.push(str(tmp_path / name), dataset)
    alice.transport.call("POST", "/datasets/machines/branches", body={"name": "sensors", "start": "main"})
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "labels.csv").write_text(readings(50, seed=1).replace("pressure", "pressure_bar", 1))
    pushed = alice.push(str(tmp_path / "v2"), "machines", branch="sensors")
    number = alice.open_change("machines", "sensors")["id"]

    code, out = ci("--change", str(number))
    assert code == 1, out
    reported = next(c for c in alice.change(number)["checks"] if c["name"] == CHECK)
    assert (reported["state"], reported["head"], reported["metrics"]) == ("failed", pushed.version, {})
    assert reported["summary"] == (
        f"The schema does not fit: labels.csv of machines@{pushed.version[:12]}: no column pressure."
    )

    assert ci("--change", "999")[0] == 2
    assert ci("--data", "machines@main")[0] == 2  # --data is for registering
