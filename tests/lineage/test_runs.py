"""Recording runs: one service behind the API, the CLI's push --step and the form."""

from __future__ import annotations

import json
import signal

import pytest

from catalog.errors import Forbidden, NotFound, UserError
from catalog.models import AuditEvent, Branch, Version
from catalog.services.tokens import token_create
from lineage.models import Edge, Node, Run
from lineage.services import runs as services


def _bearer(user):
    _, secret = token_create(user=user, name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_a_recorded_run_links_exact_input_and_output_versions(personas, make_version):
    raw = make_version("reviews-raw", stage="raw")
    clean = make_version("reviews", stage="cleaned")
    result = services.run_record(
        user=personas["alice"],
        name="filter-lang",
        step="filter",
        params={"lang": "en", "threshold": 0.8},
        code="https://git.example.org/data/filters#3f2a9c1",
        inputs=["reviews-raw@main", "s3://crawl/2024-06/"],
        outputs=["reviews@1.0.0"],
    )
    run = result.run
    assert run.step == "cleaning" and run.code_repo.endswith("/filters") and run.code_commit == "3f2a9c1"
    assert run.actor == "alice" and run.params == {"lang": "en", "threshold": 0.8}
    # The branch was resolved to the exact version when the run was recorded.
    [version_input] = [n for n in result.inputs if n.kind == "version"]
    assert version_input.version_id == raw.id and version_input.key == f"version:{raw.id}"
    [source] = [n for n in result.inputs if n.kind == "source"]
    assert source.source.uri == "s3://crawl/2024-06/" and source.source.namespace == "s3://crawl"
    assert result.outputs[0].version_id == clean.id
    edges = set(Edge.objects.values_list("src_id", "dst_id"))
    node = run.node_id
    assert edges == {(version_input.pk, node), (source.pk, node), (node, result.outputs[0].pk)}
    event = AuditEvent.objects.get(action="run.record")
    assert event.actor == "alice" and event.after["outputs"] == ["reviews@1.0.0"]


def test_inputs_are_shared_nodes_across_runs(personas, make_version):
    make_version("base")
    make_version("a")
    make_version("b")
    services.run_record(user=personas["alice"], name="x", inputs=["base@1.0.0"], outputs=["a@1.0.0"])
    services.run_record(user=personas["alice"], name="y", inputs=["base@1.0.0"], outputs=["b@1.0.0"])
    assert Node.objects.filter(kind="version").count() == 3
    assert Node.objects.get(label="base@1.0.0").out_edges.count() == 2


def test_only_stewards_record_runs_and_outputs_need_write_access(personas, make_version):
    make_version("reviews")
    for name in ("bob", "carol", "dave"):
        with pytest.raises(Forbidden, match="steward role to record runs"):
            services.run_record(user=personas[name], name="x", outputs=["reviews@1.0.0"])
    assert not Run.objects.exists()


def test_bad_runs_are_refused_with_a_reason_and_nothing_written(personas, make_version):
    make_version("reviews")
    alice = personas["alice"]
    cases = [
        (dict(name="", outputs=["reviews@1.0.0"]), "needs a name"),
        (dict(name="x"), "at least one input or output"),
        (dict(name="x", step="mining", outputs=["reviews@1.0.0"]), "not a step kind"),
        (dict(name="x", outputs=["nope@1.0.0"]), "no dataset named 'nope'"),
        (dict(name="x", outputs=["reviews@9.9.9"]), "has no branch, tag, version or id"),
        (dict(name="x", inputs=["reviews@1.0.0"], outputs=["reviews@main"]), "both an input and an output"),
        (dict(name="x", code="#abc", outputs=["reviews@1.0.0"]), "not a code reference"),
        (dict(name="x", params=["a"], outputs=["reviews@1.0.0"]), "params must be an object"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(UserError, match=reason):
            services.run_record(user=alice, **kwargs)
    assert not Node.objects.filter(kind="run").exists() and not Edge.objects.exists()


def test_a_run_that_would_close_a_cycle_is_refused(personas, make_version):
    make_version("a")
    make_version("b")
    services.run_record(user=personas["alice"], name="make-b", inputs=["a@1.0.0"], outputs=["b@1.0.0"])
    with pytest.raises(UserError, match="would make a cycle"):
        services.run_record(user=personas["alice"], name="make-a", inputs=["b@1.0.0"], outputs=["a@1.0.0"])
    assert Run.objects.count() == 1


def test_the_api_records_a_run_and_reads_it_back(personas, make_version, client):
    make_version("reviews-raw")
    make_version("reviews")
    body = {
        "name": "dedup-minhash",
        "step": "dedup",
        "params": {"threshold": 0.85, "shingles": 5},
        "code": "git@example.org:data/dedup.git#9e1f0aa",
        "started": "2024-06-01T10:00:00Z",
        "ended": "2024-06-01T10:20:00Z",
        "inputs": ["reviews-raw@1.0.0"],
        "outputs": ["reviews@1.0.0"],
    }
    headers = _bearer(personas["alice"])
    response = client.post("/api/v1/runs", json.dumps(body), content_type="application/json", **headers)
    assert response.status_code == 201, response.content
    run = response.json()
    assert run["step"] == "dedup" and run["params"]["threshold"] == 0.85 and run["code"].endswith("#9e1f0aa")
    assert [i["label"] for i in run["inputs"]] == ["reviews-raw@1.0.0"]
    again = client.get(f"/api/v1/runs/{run['id']}", **headers).json()
    assert again["name"] == "dedup-minhash" and again["inputs"] == 1 and again["outputs"] == 1


def test_the_api_answers_bad_runs_with_4xx_json(personas, make_version, client):
    make_version("reviews")
    alice, bob = _bearer(personas["alice"]), _bearer(personas["bob"])

    def post(body, headers):
        return client.post("/api/v1/runs", json.dumps(body), content_type="application/json", **headers)

    response = post({"name": "x", "outputs": ["reviews@1.0.0"]}, bob)
    assert response.status_code == 403 and "steward" in response.json()["error"]
    response = post({"name": "x", "outputs": ["ghost@1.0.0"]}, alice)
    assert response.status_code == 404 and "ghost" in response.json()["error"]
    response = post({"name": "x", "outputs": "reviews@1.0.0"}, alice)
    assert response.status_code in (400, 422) and "outputs" in response.json()["error"]
    response = post({"name": "x", "started": "yesterday", "outputs": ["reviews@1.0.0"]}, alice)
    assert response.status_code in (400, 422) and "started" in response.json()["error"]
    assert client.get("/api/v1/runs/999999", **alice).status_code == 404


def test_push_with_a_step_records_the_run_that_made_the_version(
    personas, make_version, local_store, tmp_path
):
    from io import StringIO

    from django.core.management import call_command

    make_version("reviews-raw")
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text('{"text": "fine"}\n')
    out = StringIO()
    call_command(
        "strata",
        "push",
        str(folder),
        "reviews",
        "--step",
        "filter-toxicity",
        "--input",
        "reviews-raw@main",
        "--input",
        "https://example.org/blocklist.txt",
        "--param",
        "threshold=0.7",
        "--param",
        "model=detox-v2",
        "--json",
        stdout=out,
    )
    payload = json.loads(out.getvalue())
    run = Run.objects.get(node_id=payload["run"]["id"])
    assert run.name == "filter-toxicity" and run.step == "cleaning" and run.origin == "cli"
    assert run.params == {"threshold": 0.7, "model": "detox-v2"}
    assert [n["label"] for n in payload["run"]["outputs"]] == ["reviews@1.0.0"]
    assert len(payload["run"]["inputs"]) == 2


def test_push_with_an_unknown_input_pushes_nothing(personas, local_store, tmp_path):
    from django.core.management import call_command

    from catalog.models import Version

    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    with pytest.raises(NotFound, match="no dataset named 'missing'"):
        call_command("strata", "push", str(folder), "reviews", "--step", "s", "--input", "missing@1.0.0")
    with pytest.raises(UserError, match="name it with --step"):
        call_command("strata", "push", str(folder), "reviews", "--input", "missing@1.0.0")
    assert not Version.objects.exists()


def test_a_push_whose_run_cannot_be_recorded_leaves_the_branch_where_it_was(personas, make_version, tmp_path):
    head = make_version("reviews")
    folder = tmp_path / "next"
    folder.mkdir()
    (folder / "data.jsonl").write_text('{"text": "new"}\n')
    for step, inputs, refusal in [
        ("filter", ["missing@1.0.0"], "no dataset named 'missing'"),
        ("x" * 301, [], "a run needs a name of 1 to 300 characters"),
    ]:
        with pytest.raises(UserError, match=refusal):
            services.version_push_recorded(
                user=personas["alice"],
                path=str(folder),
                dataset_name="reviews",
                author="alice",
                step=step,
                inputs=inputs,
            )
    assert Branch.objects.get(dataset__name="reviews", name="main").head_id == head.id
    assert Version.objects.filter(dataset__name="reviews").count() == 1
    assert not Run.objects.exists()


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_push_killed_before_its_run_is_recorded_commits_neither(cli, tmp_path):
    """The version and the run that made it are committed in one transaction: a
    push killed between them leaves the branch where it was, and pushing again
    makes the version and its run once."""
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "data.jsonl").write_text('{"text": "one"}\n')
    cli("push", str(folder), "reviews", check=True)
    head = Branch.objects.get(dataset__name="reviews", name="main").head_id
    (folder / "data.jsonl").write_text('{"text": "two"}\n')
    step = ("push", str(folder), "reviews", "--step", "filter-toxicity", "--input", "reviews@main")

    killed = cli(*step, env_extra={"STRATA_FAILPOINTS": "push.recording-run"})
    assert killed.returncode == -signal.SIGKILL
    assert Branch.objects.get(dataset__name="reviews", name="main").head_id == head
    assert Version.objects.count() == 1 and not Run.objects.exists()

    payload = json.loads(cli(*step, "--json", check=True).stdout)
    assert payload["created"] and payload["semver"] == "1.1.0"
    assert [n["label"] for n in payload["run"]["outputs"]] == ["reviews@1.1.0"]
    assert Version.objects.count() == 2 and Run.objects.count() == 1


def test_the_dashboard_form_records_a_run(personas, make_version, client):
    make_version("reviews-raw")
    make_version("reviews")
    client.force_login(personas["alice"])
    assert client.get("/lineage/runs/new/").status_code == 200
    response = client.post(
        "/lineage/runs/new/",
        {
            "name": "annotate-sentiment",
            "step": "annotation",
            "params": "annotators=3\nguideline=v2",
            "inputs": "reviews-raw@1.0.0",
            "outputs": "reviews@1.0.0",
        },
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/lineage/nodes/{run.node_id}/"
    assert run.params == {"annotators": 3, "guideline": "v2"} and run.origin == "dashboard"
    client.force_login(personas["bob"])
    response = client.post("/lineage/runs/new/", {"name": "x", "outputs": "reviews@1.0.0"})
    assert response.status_code == 403 and b"steward role" in response.content
