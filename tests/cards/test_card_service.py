"""Dataset cards on versions: carried forward, edited as PATCH versions, imported
and exported through the database and the command line, and the golden gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from cards.domain.cards import Card, parse_readme, render_readme
from cards.services.cards import (
    card_export,
    card_facts,
    card_history,
    card_import,
    card_of,
    card_save,
    golden_check,
    version_mark_golden,
)
from cards.services.splits import split_make
from catalog.errors import Forbidden, UserError
from catalog.models import AuditEvent, CardDocument, Version
from catalog.services.versions import version_push

CARDS = Path(__file__).parent / "examples"


def _complete_card() -> str:
    card = parse_readme((CARDS / "classic.md").read_text())
    card.set_section("out_of_scope_uses", "Not for ranking real people or products.")
    card.set_section("limitations", "Reviews come from popular films only.")
    card.set_section("contact", "data-team@example.org")
    return render_readme(card)


COMPLETE = _complete_card()


@pytest.fixture
def reviews(personas, store_url, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = ["id,text,label"] + [f"{i},review number {i},{'pos' if i % 3 else 'neg'}" for i in range(200)]
    (data / "reviews.csv").write_text("\n".join(rows) + "\n")
    version = version_push(path=str(data), dataset_name="reviews", user=personas["alice"]).version
    return {"data": data, "version": version, "dataset": version.dataset}


@pytest.mark.parametrize("name", ["classic.md", "modern.md", "multi.md"])
def test_import_then_export_through_the_database_keeps_every_field_and_section(reviews, personas, name):
    original = (CARDS / name).read_text()
    version = card_import(user=personas["alice"], dataset=reviews["dataset"], text=original)
    exported = card_export(Version.objects.get(pk=version.pk))
    card, again = parse_readme(original), parse_readme(exported)
    assert again.metadata == card.metadata
    assert [(b.heading, b.level, b.body) for b in again.blocks] == [
        (b.heading, b.level, b.body) for b in card.blocks
    ]
    assert again.title == card.title and again.preamble == card.preamble
    assert exported == render_readme(card, name="reviews")


@pytest.mark.parametrize("name", ["classic.md", "modern.md", "multi.md"])
def test_import_then_export_on_the_command_line_keeps_every_field_and_section(
    reviews, strata, tmp_path, name
):
    strata("card", "import", "reviews", str(CARDS / name))
    out = tmp_path / "README.md"
    strata("card", "export", "reviews@main", "-o", str(out))
    card, again = parse_readme((CARDS / name).read_text()), parse_readme(out.read_text())
    assert again.metadata == card.metadata
    assert [(b.heading, b.level, b.body) for b in again.blocks] == [
        (b.heading, b.level, b.body) for b in card.blocks
    ]


def test_a_card_edit_is_a_patch_version_on_the_same_tree(reviews, personas):
    before = reviews["version"]
    card = Card()
    card.metadata["pretty_name"] = "Reviews"
    card.set_section("summary", "Short film reviews.")
    edited = card_save(user=personas["alice"], dataset=reviews["dataset"], card=card)
    assert edited.semver == "1.0.1" and edited.tree_id == before.tree_id and edited.parent_id == before.id
    assert card_of(edited).sections["summary"] == "Short film reviews."
    assert card_of(before).sections == {}
    assert AuditEvent.objects.filter(action="card.edit", object_id=edited.id).exists()
    # Saving the same card again changes nothing.
    assert card_save(user=personas["alice"], dataset=reviews["dataset"], card=card).id == edited.id
    assert [v.id for v in card_history(edited)] == [edited.id]


def test_the_card_is_carried_forward_to_the_next_push(reviews, personas):
    card_import(user=personas["alice"], dataset=reviews["dataset"], text=COMPLETE)
    (reviews["data"] / "more.txt").write_text("more")
    pushed = version_push(path=str(reviews["data"]), dataset_name="reviews", user=personas["alice"]).version
    assert pushed.semver == "1.1.0"
    assert pushed.card_id is not None and pushed.card_id == pushed.parent.card_id
    assert card_of(pushed).metadata["pretty_name"] == parse_readme(COMPLETE).metadata["pretty_name"]
    assert CardDocument.objects.count() == 1


def test_viewers_cannot_edit_cards(reviews, personas):
    with pytest.raises(Forbidden):
        card_import(user=personas["bob"], dataset=reviews["dataset"], text=COMPLETE)
    assert Version.objects.count() == 1


def test_malformed_yaml_is_refused_and_nothing_is_created(reviews, personas, strata, tmp_path):
    bad = tmp_path / "README.md"
    bad.write_text("---\nlicense: [mit\npretty_name: x\n---\n# Card\n")
    with pytest.raises(UserError, match="YAML front matter is not valid"):
        card_import(user=personas["alice"], dataset=reviews["dataset"], text=bad.read_text())
    with pytest.raises(UserError, match="YAML"):
        call_command("strata", "card", "import", "reviews", str(bad))
    assert Version.objects.count() == 1 and CardDocument.objects.count() == 0


def test_computed_facts_come_from_the_data_and_lineage(reviews, personas):
    split = split_make(
        user=personas["alice"],
        dataset=reviews["dataset"],
        source=reviews["version"],
        id_column="id",
        ratios="train=0.8,test=0.2",
        label_column="label",
    )
    facts = card_facts(split.version)
    assert facts.file_count == split.version.file_count == 4
    assert facts.rows == 200 and facts.size_category == "n<1K"
    assert facts.schemas["reviews.csv"] == {"id": "int64", "text": "string", "label": "string"}
    assert facts.split["sizes"] == split.report.sizes and sum(facts.split["sizes"].values()) == 200
    assert facts.split["labels"]["train"]["pos"] + facts.split["labels"]["test"]["pos"] == 133
    assert facts.producing_run["step"] == "split" and facts.producing_run["params"]["id_column"] == "id"
    assert [step["name"] for step in facts.preprocessing] == ["split-hash"]


def test_completeness_lists_what_is_missing(reviews, personas):
    check = golden_check(reviews["version"])
    assert check.score.score == 0 and "a licence" in check.score.missing
    version = card_import(user=personas["alice"], dataset=reviews["dataset"], text=COMPLETE)
    check = golden_check(version)
    assert check.score.score == 100 and check.score.missing == []


def test_an_incomplete_card_cannot_be_marked_golden(reviews, personas, settings):
    settings.STRATA_GOLDEN_MIN_COMPLETENESS = 80
    with pytest.raises(UserError, match=r"0% complete, below the 80% needed"):
        version_mark_golden(user=personas["carol"], version=reviews["version"])
    assert not Version.objects.get(pk=reviews["version"].pk).golden


def test_the_golden_minimum_is_configurable(reviews, personas, settings):
    settings.STRATA_GOLDEN_MIN_COMPLETENESS = 0
    version_mark_golden(user=personas["carol"], version=reviews["version"])
    assert Version.objects.get(pk=reviews["version"].pk).golden


def test_a_complete_card_is_marked_golden_by_an_approver_not_a_viewer(reviews, personas):
    version = card_import(user=personas["alice"], dataset=reviews["dataset"], text=COMPLETE)
    with pytest.raises(Forbidden):
        version_mark_golden(user=personas["bob"], version=version)
    version_mark_golden(user=personas["carol"], version=version)
    assert Version.objects.get(pk=version.pk).golden
    assert AuditEvent.objects.get(action="version.golden").after["completeness"] >= 80


def test_leakage_blocks_golden_unless_overridden_with_a_recorded_reason(reviews, personas, tmp_path):
    data = reviews["data"]
    rows = ["id,text,label"] + [
        f"{i},same text {i % 5},pos" if i < 10 else f"{i},unique {i},neg" for i in range(400)
    ]
    (data / "reviews.csv").write_text("\n".join(rows) + "\n")
    version_push(path=str(data), dataset_name="reviews", user=personas["alice"])
    card_import(user=personas["alice"], dataset=reviews["dataset"], text=COMPLETE)
    from catalog.selectors import resolve_ref

    head = resolve_ref(reviews["dataset"], "main")
    split = split_make(
        user=personas["alice"],
        dataset=reviews["dataset"],
        source=head,
        id_column="id",
        ratios="a=0.5,b=0.5",
        seed=1,
    )
    assert split.report.leakage
    with pytest.raises(UserError, match="leaking across splits"):
        version_mark_golden(user=personas["carol"], version=split.version)
    assert not Version.objects.get(pk=split.version.pk).golden
    version_mark_golden(
        user=personas["carol"], version=split.version, override_reason="duplicates are templated prompts"
    )
    event = AuditEvent.objects.get(action="version.golden")
    assert event.after["override_reason"] == "duplicates are templated prompts"
    assert event.after["leakage"] == len(split.report.leakage)


def test_golden_on_the_command_line_explains_a_refusal(reviews, strata):
    with pytest.raises(UserError, match="complete, below"):
        call_command("strata", "golden", "reviews@main")
