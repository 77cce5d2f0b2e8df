"""Dataset cards: real Hugging Face cards survive import and export; completeness."""

from __future__ import annotations

from pathlib import Path

import pytest

from cards.domain.cards import Card, CardError, completeness, parse_readme, render_readme, size_category

CARDS = Path(__file__).parent / "examples"


@pytest.mark.parametrize("name", ["classic.md", "modern.md", "multi.md"])
def test_import_then_export_keeps_every_metadata_field_and_section(name):
    original = (CARDS / name).read_text()
    card = parse_readme(original)
    exported = render_readme(card)
    again = parse_readme(exported)
    assert again.metadata == card.metadata
    assert [(b.heading, b.level, b.body) for b in again.blocks] == [
        (b.heading, b.level, b.body) for b in card.blocks
    ]
    assert again.title == card.title and again.preamble == card.preamble
    assert render_readme(again) == exported
    # Nothing of the original text is lost: every heading and every line of prose.
    for line in original.split("---", 2)[2].splitlines():
        assert line.strip() in exported, line


def test_headings_map_onto_strata_sections():
    classic = parse_readme((CARDS / "classic.md").read_text()).sections
    assert classic["summary"].startswith("A binary sentiment corpus")
    assert "star rating" in classic["annotation"]
    assert "Popular films" in classic["limitations"] and "Neutral reviews" in classic["limitations"]
    assert (
        "Research use only" in classic["license_citation"] and "@inproceedings" in classic["license_citation"]
    )
    modern = parse_readme((CARDS / "modern.md").read_text())
    assert modern.sections["summary"].startswith("Question and answer pairs")
    assert modern.sections["out_of_scope_uses"] == "Medical advice of any kind."
    assert modern.sections["contact"].endswith("data-team@example.org")
    assert modern.sections["contact"].startswith("The data team")  # "Dataset Card Authors [optional]"
    assert modern.preamble.endswith("with answers.")
    multi = parse_readme((CARDS / "multi.md").read_text())
    assert "# every example" in multi.sections.get("summary", "") or any(
        "# every example" in b.body for b in multi.blocks
    )
    assert multi.metadata["configs"][1]["data_files"] == "hard/*.parquet"


def test_editing_a_section_keeps_the_others_and_its_heading():
    card = parse_readme((CARDS / "modern.md").read_text())
    card.set_section("out_of_scope_uses", "Anything clinical.")
    card.set_section("maintenance", "Reviewed every quarter.")
    text = render_readme(card)
    assert "### Out-of-Scope Use\n\nAnything clinical." in text
    assert text.rstrip().endswith("## Maintenance\n\nReviewed every quarter.")
    assert parse_readme(text).sections["maintenance"] == "Reviewed every quarter."


def test_completeness_lists_what_is_missing():
    empty = completeness(Card())
    assert empty.score == 0 and "a licence" in empty.missing
    modern = completeness(parse_readme((CARDS / "modern.md").read_text()))
    assert modern.score > 50
    assert "maintenance" in modern.missing
    assert "a licence" in modern.present
    classic = completeness(parse_readme((CARDS / "classic.md").read_text()))
    assert "a contact" in classic.missing  # "[More Information Needed]" does not count


@pytest.mark.parametrize(
    "text, message",
    [
        ("---\nlicense: [mit\n---\n# x\n", "not valid at line"),
        ("---\n- just\n- a list\n---\n", "not a mapping"),
    ],
)
def test_malformed_front_matter_is_refused_with_the_place(text, message):
    with pytest.raises(CardError, match=message):
        parse_readme(text)


def test_size_categories_follow_the_hub():
    assert size_category(999) == "n<1K"
    assert size_category(25_000) == "10K<n<100K"
    assert size_category(1_000_000) == "1M<n<10M"
