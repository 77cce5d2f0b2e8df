"""Model versions: registering them with the exact data they used, their page,
the comparison of two, and the regression flag."""

from __future__ import annotations

import itertools
import json

import pytest

from catalog.errors import Forbidden, UserError
from catalog.models import AuditEvent, Version
from catalog.selectors import resolve_spec
from catalog.services.tokens import token_create
from lineage.models import Edge, Node, Run
from lineage.selectors import section_for
from registry.domain import metrics
from registry.models import ModelPin, ModelVersion
from registry.selectors import model_compare, model_page
from registry.services.training import training_record

_counter = itertools.count()


def reviews_csv(positive: int, negative: int, start: int = 0) -> str:
    lines = ["review_id,text,label"]
    for index in range(positive + negative):
        label = "positive" if index < positive else "negative"
        lines.append(f"{start + index},review number {start + index},{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def push(personas, local_store, tmp_path):
    """push("reviews", {"train.csv": "..."}) -> a new Version on main, pushed by alice."""
    from catalog.services.versions import version_push

    def push(dataset: str, files: dict[str, str], **options) -> Version:
        folder = tmp_path / "pushes" / f"{dataset}-{next(_counter)}"
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        return version_push(path=str(folder), dataset_name=dataset, user=personas["alice"], **options).version

    return push


def _bearer(user):
    _, secret = token_create(user=user, name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def trained(personas, push):
    """fraud@3.0 on reviews 1.0.0 (balanced labels); then reviews 1.1.0 (mostly
    positive) and fraud@3.1 trained on it with a worse AUC."""
    alice = personas["alice"]
    first = push("reviews", {"train.csv": reviews_csv(50, 50), "README.md": "# Reviews\n"})
    evaluation = push("reviews-eval", {"eval.csv": reviews_csv(10, 10, start=1000)})
    old = training_record(
        user=alice,
        model="fraud",
        version="3.0",
        datasets={"train": "reviews@main", "eval": "reviews-eval@main"},
        metrics={"auc": 0.91, "log_loss": 0.30},
        params={"lr": 0.05, "depth": 8},
        code="https://git.example.org/ml/fraud#4c1d2e9",
    )
    second = push("reviews", {"train.csv": reviews_csv(80, 20), "README.md": "# Reviews\n"})
    new = training_record(
        user=alice,
        model="fraud",
        version="3.1",
        datasets={"train": "reviews@main", "eval": "reviews-eval@main"},
        metrics={"auc": 0.85, "log_loss": 0.305},
        params={"lr": 0.1, "depth": 8},
        code="https://git.example.org/ml/fraud#77aa0b1",
        artifact="s3://models/fraud/3.1/model.onnx",
    )
    return {"first": first, "second": second, "eval": evaluation, "old": old.model, "new": new.model}


# -- registering -------------------------------------------------------------------------


def test_a_ref_is_resolved_at_registration_and_stored_as_the_exact_version(personas, push):
    first = push("reviews", {"train.csv": reviews_csv(5, 5)})
    evaluation = push("reviews-eval", {"eval.csv": reviews_csv(2, 2)})
    result = training_record(
        user=personas["alice"],
        model="fraud",
        version="3.1",
        datasets={"train": "reviews@main", "eval": "reviews-eval@1.0.0"},
        metrics={"auc": 0.9},
        params={"lr": 0.05},
        code="https://git.example.org/ml/fraud#4c1d2e9",
        artifact="s3://models/fraud/3.1/model.onnx",
    )
    assert result.created
    model = result.model
    pins = {pin.role: pin for pin in model.pins.all()}
    assert pins["train"].version_id == first.id and pins["train"].requested == "reviews@main"
    assert pins["eval"].version_id == evaluation.id and pins["eval"].evaluation
    assert model.code_commit == "4c1d2e9" and model.artifact_uri.endswith("model.onnx")
    # The graph: reviews -> training run -> model -> evaluation run <- reviews-eval.
    training, evaluating = result.training_run, result.evaluation_run
    assert training.step == "training" and evaluating.step == "evaluation"
    edges = set(Edge.objects.values_list("src_id", "dst_id"))
    reviews_node = Node.objects.get(version=first)
    eval_node = Node.objects.get(version=evaluation)
    assert {
        (reviews_node.pk, training.node_id),
        (training.node_id, model.node_id),
        (model.node_id, evaluating.node_id),
        (eval_node.pk, evaluating.node_id),
    } <= edges
    event = AuditEvent.objects.get(action="model.register")
    assert event.object_id == "fraud@3.1" and event.after["datasets"]["train"] == f"reviews@{first.id}"


def test_the_same_registration_twice_returns_the_first_and_a_different_one_is_refused(personas, push):
    push("reviews", {"train.csv": reviews_csv(5, 5)})
    alice = personas["alice"]
    arguments = {
        "model": "fraud",
        "version": "3.1",
        "datasets": {"train": "reviews@main"},
        "metrics": {"auc": 0.9},
    }
    first = training_record(user=alice, **arguments)
    again = training_record(user=alice, **arguments)
    assert again.model.pk == first.model.pk and not again.created
    assert Run.objects.count() == 1
    push("reviews", {"train.csv": reviews_csv(6, 4)})  # main moved: the same call now means other data
    with pytest.raises(UserError, match="already registered with other data"):
        training_record(user=alice, **arguments)


@pytest.mark.parametrize(
    "datasets, reason",
    [
        ({"train": "reviews@9.9.9"}, "cannot pin train = reviews@9.9.9: reviews has no branch"),
        ({"train": "ghost@main"}, "cannot pin train = ghost@main: there is no dataset named 'ghost'"),
        ({"train": "s3://bucket/raw/"}, "is a source, not a dataset version"),
        ({"eval": "reviews@1.0.0"}, "needs at least one training dataset"),
        ({}, "needs the datasets it used"),
        ({"bad role": "reviews@1.0.0"}, "is not a role"),
    ],
)
def test_a_bad_pin_is_refused_and_nothing_is_recorded(personas, push, datasets, reason):
    push("reviews", {"train.csv": reviews_csv(5, 5)})
    with pytest.raises(UserError, match=reason):
        training_record(user=personas["alice"], model="fraud", version="1", datasets=datasets)
    assert not ModelVersion.objects.exists() and not Run.objects.exists()


def test_only_stewards_register_models(personas, push):
    push("reviews", {"train.csv": reviews_csv(5, 5)})
    with pytest.raises(Forbidden, match="steward role to register model versions"):
        training_record(user=personas["bob"], model="fraud", version="1", datasets={"train": "reviews@main"})


@pytest.mark.parametrize(
    "name, better",
    [
        ("auc", "higher"),
        ("accuracy", "higher"),
        ("f1_macro", "higher"),
        ("loss", "lower"),
        ("val_loss", "lower"),
        ("logloss", "lower"),
        ("mean_absolute_error", "lower"),
        ("RMSE", "lower"),
        ("eval/mae", "lower"),
        ("answer_recall", "higher"),
        ("wer", "lower"),
    ],
)
def test_a_metric_name_says_which_way_is_better(name, better):
    assert metrics.better_direction(name) == better


def test_a_metric_worse_than_the_predecessor_beyond_the_tolerance_flags_the_version(trained):
    new, old = trained["new"], trained["old"]
    assert new.predecessor_id == old.pk and new.tolerance == 0.01
    # AUC (higher is better) fell by 0.06: flagged. Log loss (lower is better)
    # rose by 0.005: worse, but within the tolerance.
    assert [change["metric"] for change in new.regressions] == ["auc"]
    change = new.regressions[0]
    assert change["before"] == 0.91 and change["after"] == 0.85 and change["better"] == "higher"
    assert not old.regressions


def test_the_tolerance_is_a_setting(personas, push, settings):
    settings.STRATA_METRIC_TOLERANCE = 0.1
    push("reviews", {"train.csv": reviews_csv(5, 5)})
    alice = personas["alice"]
    training_record(
        user=alice, model="m", version="1", datasets={"train": "reviews@main"}, metrics={"loss": 0.2}
    )
    within = training_record(
        user=alice, model="m", version="2", datasets={"train": "reviews@main"}, metrics={"loss": 0.29}
    )
    beyond = training_record(
        user=alice, model="m", version="3", datasets={"train": "reviews@main"}, metrics={"loss": 0.45}
    )
    assert not within.model.regressions
    assert beyond.model.regressions[0]["metric"] == "loss" and beyond.model.predecessor.version == "2"


# -- the model version page ------------------------------------------------------------------


def test_the_model_page_lists_the_exact_versions_it_trained_on_after_main_moved_on(client, personas, trained):
    first, second = trained["first"], trained["second"]
    Version.objects.filter(pk=first.pk).update(golden=True)
    # main has moved on to 1.1.0 since fraud@3.0 was registered on reviews@main.
    assert resolve_spec("reviews@main")[1].pk == second.pk
    client.force_login(personas["bob"])
    response = client.get("/models/fraud/versions/3.0/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'class="pinned-version" href="/datasets/reviews/versions/{first.id}/">1.0.0</a>' in html
    assert f'href="/datasets/reviews/versions/{second.id}/">1.1.0</a>' in html  # "main is now at 1.1.0"
    assert "this model keeps 1.0.0" in html and "status-golden" in html
    assert "reviews@main" in html  # as it was written, resolved at registration
    # Cards: reviews has a README.md at its root, reviews-eval none.
    assert "% complete" in html and "no card" in html
    assert "auc" in html and "0.91" in html and "↑ higher" in html and "↓ lower" in html
    assert "https://git.example.org/ml/fraud#4c1d2e9" in html
    # The lineage drawing reaches up to the data.
    assert "<svg" in html and "train-fraud" in html and "reviews@1.0.0" in html
    page = model_page(user=personas["bob"], spec="fraud@3.0")
    assert [view.version.pk for view in page.trained_on] == [first.pk]
    assert page.trained_on[0].moved_on and page.trained_on[0].card.state == "ok"
    assert page.evaluated_on[0].card.state == "none"


def test_the_flagged_page_points_at_the_data_changes_between_the_training_sets(client, personas, trained):
    first, second = trained["first"], trained["second"]
    client.force_login(personas["bob"])
    html = client.get("/models/fraud/versions/3.1/").content.decode()
    assert 'id="regression"' in html and "Metric regression" in html
    assert "<strong>auc</strong> went from 0.91 to 0.85" in html
    assert f"/datasets/reviews/compare/?from={first.id}&amp;to={second.id}" in html
    assert "/models/compare/?a=fraud%403.0&amp;b=fraud%403.1" in html
    # reviews-eval did not change, so it is not listed among the changes.
    assert html.count("what changed in") == 1
    assert 'id="regression"' not in client.get("/models/fraud/versions/3.0/").content.decode()


def test_the_comparison_shows_metric_deltas_and_the_label_shift(client, personas, trained):
    first, second = trained["first"], trained["second"]
    client.force_login(personas["bob"])
    response = client.get("/models/compare/", {"a": "fraud@3.0", "b": "fraud@3.1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Label shift in <code>train.csv</code>, column <code>label</code>" in html
    # positive 50 -> 80, negative 50 -> 20.
    assert '<td>positive</td><td class="num">50</td><td class="num">80</td><td class="num">+30</td>' in html
    assert '<td>negative</td><td class="num">50</td><td class="num">20</td><td class="num">−30</td>' in html
    assert "shifted" in html
    assert f"/datasets/reviews/compare/?from={first.id}&amp;to={second.id}" in html
    assert "−0.06" in html and "regression" in html  # auc
    assert "The same version" in html  # the evaluation data did not change
    comparison = model_compare(user=personas["bob"], spec_a="fraud@3.0", spec_b="fraud@3.1")
    train = next(diff for diff in comparison.data if diff.role == "train")
    shift = train.label_shifts[0]
    assert {row.label: (row.before, row.after) for row in shift.rows} == {
        "negative": (50, 20),
        "positive": (50, 80),
    }
    assert comparison.params == {"lr": (0.05, 0.1)}


def test_the_comparison_and_the_page_refuse_unknown_models_with_a_message(client, personas, trained):
    client.force_login(personas["bob"])
    response = client.get("/models/compare/", {"a": "fraud@3.0", "b": "fraud@9"})
    assert response.status_code == 404 and "no model version fraud@9" in response.content.decode()
    response = client.get("/models/compare/", {"a": "fraud", "b": "fraud@3.1"})
    assert response.status_code == 400 and "MODEL@VERSION" in response.content.decode()
    assert client.get("/models/fraud/versions/9/").status_code == 404


def test_the_lists_show_models_and_versions_with_flags(
    client, personas, trained, django_assert_max_num_queries
):
    client.force_login(personas["bob"])
    with django_assert_max_num_queries(8):
        html = client.get("/models/").content.decode()
    assert 'href="/models/fraud/"' in html and "3.1" in html and "1 version" in html
    with django_assert_max_num_queries(10):
        html = client.get("/models/fraud/").content.decode()
    assert "/models/fraud/versions/3.0/" in html and "reviews 1.0.0" in html and "regression" in html


def test_the_lineage_graph_shows_the_model_and_its_panel(client, personas, trained):
    client.force_login(personas["bob"])
    model = trained["new"]
    html = client.get(f"/lineage/nodes/{model.node_id}/").content.decode()
    assert "node-model" in html and "Open the model version page" in html
    data = client.get(f"/api/v1/lineage/nodes/{model.node_id}").json()
    assert data["kind"] == "model" and data["spec"] == "fraud@3.1" and data["flagged"]
    # The dataset version's page section names the models that used it.
    mentions = section_for(personas["bob"], trained["second"])["mentions"]
    assert [(heading, [m.label for m in named]) for heading, named in mentions] == [
        ("Models that used it", ["fraud@3.1"])
    ]
    html = client.get(f"/datasets/reviews/versions/{trained['second'].id}/").content.decode()
    assert 'Models that used it: <a href="/models/fraud/versions/3.1/">fraud@3.1</a>' in html


def test_a_pinned_version_cannot_be_deleted(trained):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        Version.objects.filter(pk=trained["first"].pk).delete()
    assert ModelPin.objects.filter(version=trained["first"]).exists()


# -- the REST API --------------------------------------------------------------------------


def test_the_api_registers_a_model_and_reads_it_back(client, personas, push):
    first = push("reviews", {"train.csv": reviews_csv(5, 5)})
    headers = _bearer(personas["alice"])
    body = {
        "version": "3.1",
        "datasets": {"train": "reviews@main"},
        "metrics": {"auc": 0.9},
        "params": {"lr": 0.05},
        "code": "repo#abc123",
    }
    response = client.post(
        "/api/v1/models/fraud/versions", json.dumps(body), content_type="application/json", **headers
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["spec"] == "fraud@3.1" and data["datasets"][0]["version"] == first.id
    assert data["datasets"][0]["tree"] == first.tree_id and data["training_run"]
    again = client.post(
        "/api/v1/models", json.dumps({**body, "model": "fraud"}), content_type="application/json", **headers
    )
    assert again.status_code == 200 and again.json()["created"] is False
    read = client.get("/api/v1/models/fraud/versions/3.1", **headers).json()
    assert read["datasets"][0]["semver"] == "1.0.0" and read["metrics"] == {"auc": 0.9}
    listed = client.get("/api/v1/models", **headers).json()
    assert listed["models"][0]["name"] == "fraud" and listed["models"][0]["latest"] == "3.1"
    lock = client.get("/api/v1/models/fraud/versions/3.1/lock", **headers).json()
    assert lock["strata_lock"] == 1 and lock["datasets"][0]["tree"] == first.tree_id


def test_the_api_answers_a_pin_of_a_nonexistent_version_with_400(client, personas, push):
    push("reviews", {"train.csv": reviews_csv(5, 5)})
    alice, bob = _bearer(personas["alice"]), _bearer(personas["bob"])

    def post(body, headers):
        return client.post(
            "/api/v1/models/fraud/versions", json.dumps(body), content_type="application/json", **headers
        )

    response = post({"version": "3.1", "datasets": {"train": "reviews@7.0.0"}}, alice)
    assert response.status_code == 400
    assert response.json() == {
        "error": "cannot pin train = reviews@7.0.0: reviews has no branch, tag, version or id '7.0.0'."
    }
    response = post({"version": "3.1", "datasets": {"train": "ghost@main"}}, alice)
    assert response.status_code == 400 and "ghost" in response.json()["error"]
    response = post(
        {"version": "3.1", "datasets": {"train": "reviews@main"}, "metrics": {"auc": "high"}}, alice
    )
    assert response.status_code == 400 and "must be a number" in response.json()["error"]
    response = post({"version": "3 1", "datasets": {"train": "reviews@main"}}, alice)
    assert response.status_code == 400 and "is not a model version" in response.json()["error"]
    response = post(
        {"version": "3.1", "datasets": {"train": "reviews@main"}, "params": {"x": "a\u0000b"}}, alice
    )
    assert response.status_code == 400 and "NUL" in response.json()["error"]
    response = post({"version": "3.1", "datasets": {"train": "reviews@main"}}, bob)
    assert response.status_code == 403
    assert not ModelVersion.objects.exists()
    assert client.get("/api/v1/models/fraud/versions/3.1", **alice).status_code == 404


def test_the_api_compares_two_model_versions(client, personas, trained):
    response = client.get(
        "/api/v1/models/compare", {"a": "fraud@3.0", "b": "fraud@3.1"}, **_bearer(personas["bob"])
    )
    assert response.status_code == 200
    data = response.json()
    auc = next(change for change in data["metrics"] if change["metric"] == "auc")
    assert auc["regressed"] and auc["better"] == "higher"
    train = next(diff for diff in data["data"] if diff["role"] == "train")
    table = train["changes"]["tables"][0]
    assert table["labels"]["counts_a"] == {"positive": 50, "negative": 50}
    assert table["labels"]["counts_b"] == {"positive": 80, "negative": 20}


# -- the command line ----------------------------------------------------------------------


def test_record_training_on_the_command_line(personas, push):
    from io import StringIO

    from django.core.management import call_command

    first = push("reviews", {"train.csv": reviews_csv(5, 5)})
    out = StringIO()
    call_command(
        "strata",
        "record-training",
        "fraud@3.1",
        "--dataset",
        "train=reviews@main",
        "--metric",
        "auc=0.9",
        "--param",
        "lr=0.05",
        "--code",
        "repo#abc",
        "--json",
        stdout=out,
    )
    data = json.loads(out.getvalue())
    assert data["datasets"][0]["version"] == first.id and data["metrics"] == {"auc": 0.9}
    assert ModelVersion.objects.get().origin == "cli"
    with pytest.raises(UserError, match="ROLE=DATASET@REF"):
        call_command("strata", "record-training", "fraud@3.2", "--dataset", "reviews@main", stdout=out)


def test_a_model_name_the_pages_use_is_refused(personas, push):
    push("reviews", {"train.csv": reviews_csv(5, 5)})
    with pytest.raises(UserError, match="not a model name"):
        training_record(
            user=personas["alice"], model="compare", version="1", datasets={"train": "reviews@main"}
        )


def test_the_admin_shows_model_versions_with_their_pins(client, personas, trained):
    client.force_login(personas["erin"])
    listing = client.get("/admin/registry/modelversion/")
    assert listing.status_code == 200 and "fraud" in listing.content.decode()
    detail = client.get(f"/admin/registry/modelversion/{trained['new'].node_id}/change/")
    assert detail.status_code == 200 and trained["second"].id in detail.content.decode()


def test_a_rollback_flags_the_model_versions_that_used_the_undone_data(client, personas, trained):
    from registry.services.training import flag_models_trained_on

    second = trained["second"]
    Version.objects.filter(pk=second.pk).update(rolled_back=True, rolled_back_reason="labels were shuffled")
    flagged = flag_models_trained_on(version_ids=[second.id], reason="trained on data rolled back: labels")
    assert flagged == ["fraud@3.1"]
    event = AuditEvent.objects.get(action="model.flag")
    assert event.object_id == "fraud@3.1" and event.after["datasets"] == {"train": f"reviews@{second.id}"}
    client.force_login(personas["bob"])
    html = client.get("/models/fraud/versions/3.1/").content.decode()
    assert "since rolled back (labels were shuffled)" in html and "status-rolled-back" in html


def test_roles_pinning_the_same_versions_are_compared_once(client, personas, push):
    alice = personas["alice"]
    push("digits", {"labels.csv": reviews_csv(50, 50)})
    for version, metric in (("1.0", 0.95), ("1.1", 0.82)):
        if version == "1.1":
            push("digits", {"labels.csv": reviews_csv(80, 20)})
        training_record(
            user=alice,
            model="clf",
            version=version,
            datasets={"train": "digits@main", "test": "digits@main"},
            metrics={"accuracy": metric},
        )
    client.force_login(personas["bob"])
    page = client.get("/models/compare/", {"a": "clf@1.0", "b": "clf@1.1"}).content.decode()
    assert page.count("Label shift in") == 1
    assert "The same versions as train" in page
    data = client.get(
        "/api/v1/models/compare", {"a": "clf@1.0", "b": "clf@1.1"}, **_bearer(personas["bob"])
    ).json()
    by_role = {diff["role"]: diff for diff in data["data"]}
    assert by_role["test"]["same_as"] == "train" and by_role["test"]["changes"] is None
    assert by_role["train"]["changes"]["tables"][0]["labels"]["counts_b"] == {"positive": 80, "negative": 20}


def test_the_versions_page_counts_pins_of_datasets_the_viewer_cannot_read_without_naming_them(
    client, personas, trained
):
    from catalog.models import Dataset
    from catalog.services.datasets import dataset_update

    reviews = Dataset.objects.get(name="reviews")
    dataset_update(user=personas["alice"], dataset=reviews, visibility="restricted")
    client.force_login(personas["bob"])
    html = client.get("/models/fraud/").content.decode()
    assert "/models/fraud/versions/3.1/" in html
    assert "reviews 1." not in html and "1 pinned version of datasets you cannot read" in html
    client.force_login(personas["alice"])
    html = client.get("/models/fraud/").content.decode()
    assert "reviews 1.0.0" in html and "cannot read" not in html
