"""The card pages: rendered and sanitised, the editor for stewards, import and
export, the split form and golden marking, each refusal a message on the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from cards.domain.cards import parse_readme
from catalog.models import AuditEvent, Version
from catalog.services.versions import version_push

CARDS = Path(__file__).parent / "examples"


@pytest.fixture
def reviews(personas, settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    data = tmp_path / "data"
    data.mkdir()
    rows = ["id,text,label"] + [f"{i},text {i},{'pos' if i % 2 else 'neg'}" for i in range(100)]
    (data / "reviews.csv").write_text("\n".join(rows) + "\n")
    return version_push(path=str(data), dataset_name="reviews", user=personas["alice"]).version


def _as(client, personas, name):
    client.force_login(personas[name])
    return client


def test_the_card_page_shows_computed_facts_and_what_is_missing(client, personas, reviews):
    page = _as(client, personas, "bob").get("/datasets/reviews/versions/1.0.0/card/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "This version has no card yet" in text and "Computed from the data" in text
    assert "n&lt;1K" in text and "Schema of" in text and "✗ a licence" in text
    assert "Edit card" not in text and "Mark golden" not in text


def test_a_steward_edits_the_card_and_markdown_is_sanitised(client, personas, reviews):
    c = _as(client, personas, "alice")
    assert c.get("/datasets/reviews/card/edit/").status_code == 200
    response = c.post(
        "/datasets/reviews/card/edit/",
        {
            "metadata": "pretty_name: Film reviews\nlicense: cc-by-4.0\n",
            "section_summary": "**Short** reviews.<script>alert(1)</script><img src=x onerror=alert(2)>",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith("/versions/1.0.1/card/")
    page = c.get(response["Location"]).content.decode()
    assert "<strong>Short</strong> reviews." in page
    assert "<script>alert" not in page and "onerror" not in page
    assert "Film reviews" in page and "cc-by-4.0" in page
    assert Version.objects.get(semver="1.0.1").tree_id == reviews.tree_id


def test_bad_metadata_yaml_in_the_editor_is_a_message_and_nothing_is_made(client, personas, reviews):
    response = _as(client, personas, "alice").post(
        "/datasets/reviews/card/edit/", {"metadata": "license: [mit\n"}
    )
    assert response.status_code == 400 and "not valid YAML" in response.content.decode()
    assert Version.objects.count() == 1


def test_viewers_may_not_open_the_editor(client, personas, reviews):
    assert _as(client, personas, "bob").get("/datasets/reviews/card/edit/").status_code == 403


def test_import_and_export_a_readme_on_the_page(client, personas, reviews):
    c = _as(client, personas, "alice")
    original = (CARDS / "modern.md").read_text()
    with (CARDS / "modern.md").open("rb") as handle:
        response = c.post("/datasets/reviews/card/import/", {"readme": handle})
    assert response.status_code == 302
    exported = c.get("/datasets/reviews/versions/1.0.1/card/README.md")
    assert exported["Content-Disposition"] == 'attachment; filename="README.md"'
    assert parse_readme(exported.content.decode()).metadata == parse_readme(original).metadata


def test_a_malformed_readme_import_is_a_message_on_the_page(client, personas, reviews, tmp_path):
    bad = tmp_path / "README.md"
    bad.write_text("---\nlicense: [mit\n---\n# x\n")
    c = _as(client, personas, "alice")
    with bad.open("rb") as handle:
        response = c.post("/datasets/reviews/card/import/", {"readme": handle}, follow=True)
    assert (
        "Cannot import the card: the card&#x27;s YAML front matter is not valid" in response.content.decode()
    )
    assert Version.objects.count() == 1


def test_the_split_form_makes_a_split_version(client, personas, reviews):
    c = _as(client, personas, "alice")
    response = c.post(
        "/datasets/reviews/split/",
        {"ref": "1.0.0", "id_column": "id", "label_column": "label", "ratios": "train=0.5,test=0.5",
         "method": "hash", "seed": "42", "branch": "main"},
    )  # fmt: skip
    assert response.status_code == 302
    split = Version.objects.get(stage="split")
    page = c.get(f"/datasets/reviews/versions/{split.semver}/card/").content.decode()
    assert "Splits (hash, seed 42)" in page and "No leakage" in page and "split-hash" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id_column": "uid"}, "there is no id column &#x27;uid&#x27;"),
        ({"id_column": "label"}, "duplicate ids"),
        ({"id_column": "id", "ratios": "train=0.5,test=0.2"}, "add up to 0.7, not 1"),
        ({"id_column": "id", "label_column": "stars"}, "there is no label column &#x27;stars&#x27;"),
    ],
)
def test_bad_split_input_on_the_form_is_a_message_and_nothing_is_made(
    client, personas, reviews, fields, message
):
    form = {
        "ref": "main",
        "ratios": "train=0.8,test=0.2",
        "method": "hash",
        "seed": "1",
        "branch": "main",
    } | fields
    response = _as(client, personas, "alice").post("/datasets/reviews/split/", form)
    assert response.status_code == 400 and message in response.content.decode()
    assert Version.objects.count() == 1


def test_golden_on_the_page_is_refused_for_an_incomplete_card_then_allowed(
    client, personas, reviews, settings
):
    c = _as(client, personas, "carol")
    response = c.post("/datasets/reviews/versions/1.0.0/golden/", follow=True)
    assert "0% complete, below the 80% needed" in response.content.decode()
    settings.STRATA_GOLDEN_MIN_COMPLETENESS = 0
    c.post("/datasets/reviews/versions/1.0.0/golden/")
    assert Version.objects.get(pk=reviews.pk).golden
    assert AuditEvent.objects.filter(action="version.golden", user=personas["carol"]).exists()


def test_the_version_and_dataset_pages_link_to_the_card(client, personas, reviews):
    c = _as(client, personas, "bob")
    assert (
        "/datasets/reviews/versions/1.0.0/card/"
        in c.get("/datasets/reviews/versions/1.0.0/").content.decode()
    )
    assert "/datasets/reviews/versions/1.0.0/card/" in c.get("/datasets/reviews/").content.decode()
