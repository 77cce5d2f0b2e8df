"""The dashboard as a data steward uses it, in Chromium: sign in, search, open a
dataset, browse a folder, preview a CSV, compare, download, upload, and a viewer
refused. Each test leaves a screenshot in tests/output/."""

from __future__ import annotations

import zipfile

import pytest
from playwright.sync_api import expect

from catalog.models import Dataset, Version
from catalog.services.datasets import dataset_update
from tests.factories.browser import screenshot, sign_in
from tests.factories.datasets import push, reviews

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def catalog(personas, store, tmp_path):
    """reviews (two versions), and a few neighbours to search among."""
    dataset, first, second = reviews(tmp_path, personas)
    alice = personas["alice"]
    push(tmp_path, "weather-stations", {"readings.csv": "day,temp\n1,20\n"}, user=alice, stage="cleaned")
    dataset_update(
        user=alice,
        dataset=Dataset.objects.get(name="weather-stations"),
        description="Hourly readings from 40 stations.",
        keywords=["climate"],
    )
    push(tmp_path, "street-signs", {"labels.jsonl": '{"id": 1}\n'}, user=alice, stage="labelled")
    Version.objects.filter(dataset__name="street-signs").update(golden=True)
    return personas


def test_sign_in(page, catalog):
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")
    expect(page.get_by_role("heading", name="Sign in to Strata")).to_be_visible()
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    screenshot(page, "sign-in-refused")
    page.get_by_label("Password").fill("alice-password")
    page.keyboard.press("Enter")  # the form works from the keyboard
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    expect(page.locator("header")).to_contain_text("alice")
    expect(page.locator("header")).to_contain_text("steward")
    screenshot(page, "sign-in-catalog")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Strata")).to_be_visible()


def test_search(page, catalog):
    sign_in(page, "bob")
    expect(page.locator("table.datasets tbody tr")).to_have_count(3)
    page.get_by_label("Search datasets").fill("climate")
    # htmx swaps the results in as one types, and the address follows.
    expect(page.locator("table.datasets tbody tr")).to_have_count(1)
    expect(page.locator("table.datasets")).to_contain_text("weather-stations")
    expect(page).to_have_url("/?q=climate&stage=&owner=&keyword=&sort=updated")
    screenshot(page, "search-climate")
    page.get_by_label("Search datasets").fill("no-such-thing")
    expect(page.get_by_text("No dataset matches.")).to_be_visible()
    screenshot(page, "search-empty")
    page.get_by_role("link", name="Clear search and filters").click()
    page.get_by_label("Has a golden version").check()
    expect(page.locator("table.datasets tbody tr")).to_have_count(1)
    expect(page.locator("table.datasets")).to_contain_text("street-signs")
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/")
    screenshot(page, "catalog-phone")


def test_open_a_dataset(page, catalog):
    sign_in(page, "bob")
    page.locator("a.dataset-name", has_text="reviews").click()
    expect(page.get_by_role("heading", name="reviews")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("1.1.0")
    expect(page.locator("table.history tbody tr")).to_have_count(2)
    expect(page.locator("table.history")).to_contain_text("Clean labels")
    expect(page.get_by_role("link", name="Upload a version")).to_have_count(0)
    screenshot(page, "dataset-page")


def test_browse_a_folder(page, catalog):
    sign_in(page, "bob")
    page.goto("/datasets/reviews/versions/1.1.0/")
    expect(page.locator("#pull-command")).to_have_value("python manage.py strata pull reviews@1.1.0 DEST")
    page.get_by_role("link", name="train/").click()
    expect(page).to_have_url("/datasets/reviews/versions/1.1.0/?path=train")
    expect(page.locator("table.files")).to_contain_text("part-0.csv")
    expect(page.locator("table.files")).not_to_contain_text("README.md")
    screenshot(page, "version-folder")
    page.get_by_role("link", name="↑ Up a folder").click()
    expect(page.locator("table.files")).to_contain_text("README.md")


def test_preview_a_csv(page, catalog):
    sign_in(page, "bob")
    page.goto("/datasets/reviews/versions/1.1.0/?path=train")
    page.get_by_role("link", name="part-0.csv", exact=True).click()
    expect(page.get_by_role("heading", name="part-0.csv")).to_be_visible()
    table = page.locator("table.data")
    expect(table.locator("thead")).to_contain_text("label")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table).to_contain_text("broke in a week")
    screenshot(page, "preview-csv")
    page.goto("/datasets/reviews/versions/1.1.0/files/features.parquet")
    expect(page.locator(".schema")).to_contain_text("double")
    screenshot(page, "preview-parquet")
    page.goto("/datasets/reviews/versions/1.1.0/files/images/cat.png")
    expect(page.locator("figure.thumb img")).to_be_visible()
    assert page.locator("figure.thumb img").evaluate("img => img.naturalWidth") == 64
    screenshot(page, "preview-image")


def test_compare_two_versions(page, catalog):
    sign_in(page, "bob")
    page.goto("/datasets/reviews/")
    page.get_by_role("link", name="Compare versions").click()
    page.get_by_label("From").select_option("1.0.0")
    page.get_by_label("To").select_option("1.1.0")
    page.get_by_role("button", name="Compare").click()
    summary = page.locator(".diff-summary")
    expect(summary).to_contain_text("2 added")
    expect(summary).to_contain_text("1 removed")
    expect(summary).to_contain_text("1 modified")
    expect(page.locator("table.diff tbody tr")).to_have_count(4)
    screenshot(page, "compare")
    page.get_by_role("link", name="train/part-1.csv").click()
    expect(page.locator("table.data")).to_contain_text("too loud")
    page.goto("/datasets/reviews/compare/?from=1.0.0&to=nonsense")
    expect(page.get_by_role("alert")).to_contain_text("reviews has no branch, tag, version or id 'nonsense'")
    screenshot(page, "compare-bad-query")


def test_download_a_file(page, catalog):
    sign_in(page, "bob")
    page.goto("/datasets/reviews/versions/1.1.0/files/train/part-0.csv")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download", exact=True).click()
    download = info.value
    assert download.suggested_filename == "part-0.csv"
    with open(download.path(), "rb") as handle:
        assert (
            handle.read()
            == b"id,text,label\n1,great phone,positive\n2,broke in a week,negative\n3,fine,neutral\n"
        )
    screenshot(page, "download-file")
    page.goto("/datasets/reviews/versions/1.1.0/")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download .tar").click()
    assert info.value.suggested_filename == "reviews-1.1.0.tar"


def test_upload_a_version(page, catalog, tmp_path):
    sign_in(page, "alice")
    page.locator("a.dataset-name", has_text="reviews").click()
    page.get_by_role("link", name="Upload a version").click()
    expect(page.get_by_role("heading", name="Upload a new version of reviews")).to_be_visible()
    folder = tmp_path / "to-upload"
    folder.mkdir()
    (folder / "train.csv").write_text("id,text,label\n1,new row,positive\n")
    (folder / "notes.md").write_text("Relabelled by the second team.\n")
    page.get_by_label("Message").fill("Second labelling pass")
    page.get_by_label("Stage").select_option("labelled")
    page.get_by_label("Files or an archive").set_input_files(
        [str(folder / "train.csv"), str(folder / "notes.md")]
    )
    screenshot(page, "upload-form")
    page.get_by_role("button", name="Upload version").click()
    page.wait_for_url("**/datasets/reviews/versions/*/")
    # The tables of 1.1.0 are gone from this version: its number says so (the
    # numbering rules decide how), and the page names it.
    made = Version.objects.filter(dataset__name="reviews").latest("created")
    assert made.message == "Second labelling pass" and made.stage == "labelled"
    expect(page).to_have_url(f"/datasets/reviews/versions/{made.semver}/")
    expect(page.locator(".messages")).to_contain_text(f"Stored reviews {made.semver} on main: 2 files")
    expect(page.locator(".lead")).to_contain_text("Second labelling pass")
    expect(page.locator("table.files")).to_contain_text("notes.md")
    screenshot(page, "upload-done")

    # An archive with a path that climbs out of its folder: a clear message, nothing stored.
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("ok.txt", "fine")
        archive.writestr("../../outside.txt", "not fine")
    page.goto("/datasets/reviews/upload/")
    page.get_by_label("Files or an archive").set_input_files(str(evil))
    page.get_by_role("button", name="Upload version").click()
    expect(page.get_by_role("alert")).to_contain_text("climbs out of its folder (../../outside.txt)")
    screenshot(page, "upload-refused-archive")
    assert Version.objects.filter(dataset__name="reviews").count() == 3


def test_upload_over_the_limit_is_refused(page, catalog, settings, tmp_path):
    settings.STRATA_UPLOAD_MAX_BYTES = 100_000
    sign_in(page, "alice")
    page.goto("/datasets/reviews/upload/")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\1" * 300_000)
    page.get_by_label("Files or an archive").set_input_files(str(big))
    # The page warns at once; the server would refuse it anyway.
    expect(page.locator("#size-warning")).to_contain_text("larger than the upload limit of 97.7 KiB")
    page.evaluate("document.getElementById('upload-form').submit()")  # past the browser's check
    expect(page.get_by_role("alert")).to_contain_text("larger than the limit of 97.7 KiB; nothing was stored")
    screenshot(page, "upload-too-large")
    assert Version.objects.filter(dataset__name="reviews").count() == 2


def test_a_viewer_is_refused_an_upload(page, catalog, tmp_path):
    sign_in(page, "bob")
    page.goto("/datasets/reviews/")
    expect(page.get_by_role("link", name="Upload a version")).to_have_count(0)
    response = page.goto("/datasets/reviews/upload/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator(".lead")).to_contain_text("You need the steward role to change reviews.")
    screenshot(page, "viewer-refused-upload")


def test_a_steward_who_lost_the_role_is_refused_by_the_service(page, catalog, tmp_path):
    sign_in(page, "alice")
    page.goto("/datasets/reviews/upload/")
    (tmp_path / "x.txt").write_text("x")
    page.get_by_label("Files or an archive").set_input_files(str(tmp_path / "x.txt"))
    catalog["alice"].groups.clear()  # an admin takes the role away meanwhile
    page.get_by_role("button", name="Upload version").click()
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator(".lead")).to_contain_text("steward role")
    screenshot(page, "stale-form-refused")
    assert Version.objects.filter(dataset__name="reviews").count() == 2


def test_edit_metadata_and_error_pages(page, catalog):
    sign_in(page, "alice")
    page.goto("/datasets/reviews/edit/")
    page.get_by_label("Description").fill("Reviews, relabelled.")
    page.get_by_label("Keywords").fill("nlp, sentiment")
    page.get_by_role("textbox", name="Owners").fill("alice, nobody-here")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("There is no user named 'nobody-here'")
    screenshot(page, "edit-refused")
    page.get_by_role("textbox", name="Owners").fill("alice, carol")
    page.get_by_label("Restricted to owners and groups").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved the details of reviews.")
    expect(page.locator(".keywords")).to_contain_text("sentiment")
    screenshot(page, "edit-saved")
    page.goto("/datasets/reviews/versions/1.1.0/files/no/such/file.csv")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator(".lead")).to_contain_text("no/such/file.csv is not in reviews@1.1.0")
    screenshot(page, "not-found")
