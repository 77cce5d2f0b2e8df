"""The card page in Chromium: import a real-shaped card, read it rendered and
sanitised with its computed facts, make a split from the form, edit the card, and
see the golden gate refuse then accept."""

from __future__ import annotations

from pathlib import Path

from catalog.models import AuditEvent, Version
from catalog.services.versions import version_push
from tests.factories.browser import screenshot, sign_in

CARDS = Path(__file__).resolve().parent.parent / "cards" / "examples"


def test_steward_imports_splits_and_edits_a_card_approver_marks_it_golden(page, personas, tmp_path, settings):
    settings.STRATA_GOLDEN_MIN_COMPLETENESS = 60
    data = tmp_path / "data"
    data.mkdir()
    rows = ["id,text,label"] + [f"{i},review {i % 97},{'pos' if i % 3 else 'neg'}" for i in range(600)]
    (data / "reviews.csv").write_text("\n".join(rows) + "\n")
    version_push(path=str(data), dataset_name="reviews", user=personas["alice"])
    hostile = (
        CARDS / "classic.md"
    ).read_text() + "\n## Notes\n\nSee <script>document.title='owned'</script> here.\n"
    card_file = tmp_path / "README.md"
    card_file.write_text(hostile)

    sign_in(page, "alice")
    page.goto("/datasets/reviews/")
    page.get_by_role("link", name="Dataset card").click()
    page.get_by_text("This version has no card yet").wait_for()
    page.get_by_label("Import a Hugging Face README.md").set_input_files(str(card_file))
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Card imported as reviews@1.0.1").wait_for()
    prose = page.locator("#card-prose")
    assert prose.get_by_role("heading", name="Dataset Summary").count() == 1
    assert page.locator("#card-prose script").count() == 0 and page.title() != "owned"

    # A split from the form: sizes, labels and leakage (the texts repeat) appear.
    page.goto("/datasets/reviews/split/")
    page.get_by_label("Id column").fill("id")
    page.get_by_label("Label column (optional)").fill("label")
    page.get_by_label("Ratios").fill("train=0.8,test=0.2")
    page.get_by_role("button", name="Make the split").click()
    page.get_by_text("Split made as reviews@1.1.0").wait_for()
    assert page.locator(".split-sizes tbody tr").count() == 2
    page.get_by_text("groups of identical examples sit in more than one split").wait_for()
    assert "split-hash" in page.locator(".steps").inner_text()
    screenshot(page, "card-split")

    # The editor: fill what the checklist says is missing.
    page.get_by_role("link", name="Edit card").click()
    page.get_by_label("Out-of-Scope Uses").fill("Not for ranking **real people**.")
    page.get_by_label("Contact").fill("data-team@example.org")
    page.get_by_role("button", name="Save card").click()
    page.get_by_text("Card saved as reviews@1.1.1").wait_for()
    assert prose.locator("strong", has_text="real people").count() == 1

    page.context.clear_cookies()
    sign_in(page, "carol")
    page.goto("/datasets/reviews/versions/1.1.1/card/")
    page.get_by_role("button", name="Mark golden").click()
    page.get_by_text("examples leaking across splits").wait_for()
    page.get_by_label("Why mark it golden despite the leakage?").fill("repeated texts are templated")
    page.get_by_role("button", name="Mark golden").click()
    page.get_by_text("reviews@1.1.1 is golden.").wait_for()
    screenshot(page, "card-page")
    assert Version.objects.get(semver="1.1.1").golden
    assert (
        AuditEvent.objects.get(action="version.golden").after["override_reason"]
        == "repeated texts are templated"
    )
    history = page.locator(".card-history li")
    assert history.count() == 2
