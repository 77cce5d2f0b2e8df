"""The lineage page, its exports, the read API and the section for version pages."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.test import RequestFactory

from catalog.models import Dataset
from catalog.services.datasets import dataset_update
from catalog.services.tokens import token_create
from lineage import selectors
from lineage.models import Edge, Node, Run
from lineage.services import runs as services


@pytest.fixture
def pipeline(personas, make_version):
    """crawl (source) -> collect -> reviews-raw -> filter -> reviews -> split -> {train, test}."""
    alice = personas["alice"]
    make_version("reviews-raw", stage="raw")
    make_version("reviews", stage="cleaned")
    make_version("reviews-train", stage="split")
    make_version("reviews-test", stage="split")
    collect = services.run_record(
        user=alice,
        name="crawl-reviews",
        step="collection",
        inputs=["https://crawl.example.org/reviews/"],
        outputs=["reviews-raw@1.0.0"],
    )
    filtering = services.run_record(
        user=alice,
        name="filter-lang",
        step="cleaning",
        params={"lang": "en", "threshold": 0.8},
        code="https://git.example.org/data/filters#3f2a9c1",
        inputs=["reviews-raw@1.0.0"],
        outputs=["reviews@1.0.0"],
    )
    split = services.run_record(
        user=alice,
        name="split-by-hash",
        step="split",
        params={"test": 0.1},
        inputs=["reviews@1.0.0"],
        outputs=["reviews-train@1.0.0", "reviews-test@1.0.0"],
    )
    return {"collect": collect, "filter": filtering, "split": split, "reviews": filtering.outputs[0]}


def test_the_page_draws_the_neighbourhood_with_links_and_details(client, personas, pipeline):
    client.force_login(personas["bob"])
    reviews = pipeline["reviews"]
    response = client.get(f"/lineage/nodes/{reviews.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and "reviews@1.0.0" in html
    for label in ("filter-lang", "reviews-raw@1.0.0", "split-by-hash", "reviews-train@1.0.0"):
        assert label in html
    # Depth 2 both ways: the crawl source is three steps up, so it is not drawn.
    assert "crawl.example.org" not in html
    run_id = pipeline["filter"].run.node_id
    assert f'href="?select={run_id}"' in html
    selected = client.get(f"/lineage/nodes/{reviews.pk}/?select={run_id}").content.decode()
    assert (
        "threshold" in selected
        and "0.8" in selected
        and "https://git.example.org/data/filters#3f2a9c1" in selected
    )
    deeper = client.get(f"/lineage/nodes/{reviews.pk}/?depth=4&direction=upstream").content.decode()
    assert "crawl.example.org" in deeper and "split-by-hash" not in deeper


def test_the_page_caps_a_layer_and_says_how_many_more(
    client, personas, pipeline, django_assert_max_num_queries
):
    reviews = pipeline["reviews"]
    runs = Node.objects.bulk_create(
        [Node(kind="run", key=f"run:bench:{i}", label=f"consumer-{i:04d}") for i in range(5000)]
    )
    Run.objects.bulk_create([Run(node=node, name=node.label) for node in runs])
    Edge.objects.bulk_create([Edge(src=reviews, dst=node) for node in runs])
    client.force_login(personas["bob"])
    with django_assert_max_num_queries(22):
        response = client.get(f"/lineage/nodes/{reviews.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "+4,990 more" in html
    assert html.count('class="node node-run') <= 12 + 2
    assert "consumer-4999" in html and "consumer-0001" not in html


def test_bad_requests_get_a_clear_message_on_the_page(client, personas, pipeline):
    client.force_login(personas["bob"])
    node = pipeline["reviews"].pk
    for query, reason in [
        ("depth=0", "depth must be a whole number from 1 to 5"),
        ("depth=6", "depth must be a whole number from 1 to 5"),
        ("depth=two", "depth must be a whole number from 1 to 5"),
        ("direction=sideways", "direction must be upstream, downstream or both"),
    ]:
        response = client.get(f"/lineage/nodes/{node}/?{query}")
        assert response.status_code == 400 and reason in response.content.decode().lower()
    response = client.get("/lineage/nodes/987654/")
    assert response.status_code == 404 and "There is no lineage node 987654" in response.content.decode()
    response = client.get(f"/lineage/nodes/{node}/?select=987654")
    assert response.status_code == 404


def test_exports_are_the_drawn_graph_as_svg_and_json(client, personas, pipeline):
    client.force_login(personas["bob"])
    node = pipeline["reviews"].pk
    svg = client.get(f"/lineage/nodes/{node}/graph.svg?depth=1")
    assert svg["Content-Type"].startswith("image/svg+xml") and svg.content.startswith(b"<?xml")
    assert b"filter-lang" in svg.content and b"http://testserver/lineage/nodes/" in svg.content
    data = client.get(f"/lineage/nodes/{node}/graph.json?depth=1").json()
    labels = {n["label"] for n in data["nodes"]}
    assert labels == {"reviews@1.0.0", "filter-lang", "split-by-hash"}
    assert {e["kind"] for e in data["edges"]} == {"produced", "consumed"}
    assert client.get(f"/lineage/nodes/{node}/graph.json?depth=9").status_code == 400


def test_restricted_versions_vanish_from_the_graph_for_outsiders(client, personas, pipeline):
    dataset_update(
        user=personas["alice"], dataset=Dataset.objects.get(name="reviews-test"), visibility="restricted"
    )
    test_node = Node.objects.get(label="reviews-test@1.0.0")
    client.force_login(personas["dave"])
    html = client.get(f"/lineage/nodes/{pipeline['reviews'].pk}/").content.decode()
    assert "reviews-train@1.0.0" in html and "reviews-test@1.0.0" not in html
    assert client.get(f"/lineage/nodes/{test_node.pk}/").status_code == 404
    client.force_login(personas["alice"])
    assert "reviews-test@1.0.0" in client.get(f"/lineage/nodes/{pipeline['reviews'].pk}/").content.decode()


def test_the_version_section_shows_what_made_it(
    personas, pipeline, make_version, django_assert_max_num_queries
):
    reviews = pipeline["reviews"]
    request = RequestFactory().get("/")
    request.user = personas["bob"]
    template = Template("{% load lineage %}{% lineage_section version %}")
    with django_assert_max_num_queries(12):
        html = template.render(Context({"request": request, "version": reviews.version}))
    assert "Made by" in html and "filter-lang" in html and "lang=en" in html and "<svg" in html
    assert f"/lineage/nodes/{reviews.pk}/" in html
    lonely = template.render(Context({"request": request, "version": make_version("untracked")}))
    assert "No run has recorded this version yet" in lonely and "strata push PATH untracked" in lonely
    section = selectors.section_for(personas["bob"], reviews.version)
    assert [run["label"] for run in section["produced_by"]] == ["filter-lang"] and section["consumed_by"] == 1


def test_the_version_link_goes_to_its_node_or_says_nothing_is_recorded(
    client, personas, pipeline, make_version
):
    client.force_login(personas["bob"])
    reviews = pipeline["reviews"]
    response = client.get(f"/lineage/versions/{reviews.version_id}/")
    assert response.status_code == 302 and response["Location"].startswith(f"/lineage/nodes/{reviews.pk}/")
    other = make_version("untracked")
    response = client.get(f"/lineage/versions/{other.id}/")
    assert response.status_code == 200 and "No run has recorded this version" in response.content.decode()
    assert client.get("/lineage/versions/nope/").status_code == 404


def test_the_read_api_walks_upstream_downstream_and_between(client, personas, pipeline):
    _, secret = token_create(user=personas["bob"], name="reader")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    reviews, raw = pipeline["reviews"], pipeline["filter"].inputs[0]
    up = client.get(f"/api/v1/lineage/nodes/{reviews.pk}/upstream", **auth).json()
    assert {n["label"] for n in up["nodes"] if n["kind"] != "source"} == {
        "filter-lang",
        "reviews-raw@1.0.0",
        "crawl-reviews",
    }
    assert [n["uri"] for n in up["nodes"] if n["kind"] == "source"] == ["https://crawl.example.org/reviews/"]
    down = client.get(f"/api/v1/lineage/nodes/{raw.pk}/downstream?depth=2", **auth).json()
    assert {n["label"] for n in down["nodes"]} == {"filter-lang", "reviews@1.0.0"}
    path = client.get(
        f"/api/v1/lineage/path?source={raw.pk}&target={pipeline['split'].outputs[0].pk}", **auth
    ).json()
    assert [p["label"] for p in path["path"]] == [
        "reviews-raw@1.0.0",
        "filter-lang",
        "reviews@1.0.0",
        "split-by-hash",
        "reviews-train@1.0.0",
    ]
    train, test = pipeline["split"].outputs
    response = client.get(f"/api/v1/lineage/path?source={train.pk}&target={test.pk}", **auth)
    assert response.status_code == 404 and "no path joins" in response.json()["error"]
    response = client.get(f"/api/v1/lineage/nodes/{reviews.pk}/graph?depth=0", **auth)
    assert response.status_code == 400 and "depth must be" in response.json()["error"]
    response = client.get(f"/api/v1/lineage/nodes/{reviews.pk}/graph?direction=left", **auth)
    assert response.status_code == 400 and "direction must be" in response.json()["error"]
    assert client.get("/api/v1/lineage/nodes/424242", **auth).status_code == 404
    node = client.get(f"/api/v1/lineage/nodes/{pipeline['filter'].run.node_id}", **auth).json()
    assert node["params"] == {"lang": "en", "threshold": 0.8} and node["code"].endswith("#3f2a9c1")


def test_what_changed_upstream_between_two_versions(client, personas, pipeline, make_version):
    alice = personas["alice"]
    make_version("reviews-raw")
    make_version("reviews")
    services.run_record(
        user=alice,
        name="filter-lang",
        step="cleaning",
        params={"lang": "en", "threshold": 0.9},
        code="https://git.example.org/data/filters#77aa001",
        inputs=["reviews-raw@1.1.0", "https://example.org/blocklist.txt"],
        outputs=["reviews@1.1.0"],
    )
    _, secret = token_create(user=personas["bob"], name="reader")
    result = client.get(
        "/api/v1/lineage/changes?a=reviews@1.0.0&b=reviews@1.1.0", HTTP_AUTHORIZATION=f"Bearer {secret}"
    ).json()
    changes = {change["step"]: change for change in result["changed_steps"]}
    # reviews-raw@1.1.0 was pushed by hand: the crawl is upstream of 1.0.0 only.
    assert changes["crawl-reviews"]["run_b"] is None
    change = changes["filter-lang"]
    assert change["params"] == {"threshold": {"a": 0.8, "b": 0.9}}
    assert change["code"] == {
        "a": "https://git.example.org/data/filters#3f2a9c1",
        "b": "https://git.example.org/data/filters#77aa001",
    }
    assert [s["label"] for s in result["sources_only_b"]] == ["reviews-raw@1.1.0", "blocklist.txt"] or {
        s["label"] for s in result["sources_only_b"]
    } == {"reviews-raw@1.1.0", "blocklist.txt"}
    client.force_login(personas["bob"])
    html = client.get("/lineage/compare/?a=reviews@1.0.0&b=reviews@1.1.0").content.decode()
    assert "threshold" in html and "0.8 → 0.9" in html
    response = client.get("/lineage/compare/?a=reviews@1.0.0&b=reviews@7.0.0")
    assert response.status_code == 404 and "has no branch, tag, version or id" in response.content.decode()


def test_the_index_lists_the_latest_runs(client, personas, pipeline, django_assert_max_num_queries):
    client.force_login(personas["bob"])
    with django_assert_max_num_queries(6):
        html = client.get("/lineage/").content.decode()
    assert html.index("split-by-hash") < html.index("filter-lang") < html.index("crawl-reviews")
