"""The dashboard's pages, through the Django test client: what each shows, how
bad input is answered, and how many queries each page makes (pinned, so no page
grows a query per row)."""

from __future__ import annotations

import io
import tarfile

import pytest
from django.urls import reverse

from catalog.models import Dataset, Version
from catalog.services.datasets import dataset_update
from tests.factories.datasets import clone_datasets, push, reviews

pytestmark = pytest.mark.django_db

# Pinned query counts. Each includes the three every signed-in page makes
# (session, user, the user's roles). The catalog's count is with its filter
# menus not yet cached (two queries fewer once they are).
LINEAGE_QUERIES = 2
CATALOG_QUERIES = 11
# The dataset and version pages include the lineage section (the version's node
# and its neighbours, whatever their number): a fixed few queries more. The
# dataset page also counts its open change requests and lists its protection rules.
CHANGES_QUERIES = 2
DATASET_QUERIES = 11 + LINEAGE_QUERIES + CHANGES_QUERIES
VERSION_QUERIES = 8 + LINEAGE_QUERIES


@pytest.fixture(autouse=True)
def fresh_cache():
    """The catalog caches its filter menus per user id; ids repeat between tests."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def local_store(settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"


@pytest.fixture
def data(personas, local_store, tmp_path):
    return reviews(tmp_path, personas)


@pytest.fixture
def as_bob(client, personas):
    client.force_login(personas["bob"])
    return client


def _page(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.content[:2000]
    return response.content.decode()


# -- signing in --------------------------------------------------------------------------


def test_signed_out_visitors_are_sent_to_sign_in(client, db):
    response = client.get(reverse("catalog:dataset_list"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_sign_in_and_out(client, personas):
    response = client.post(reverse("login"), {"username": "bob", "password": "bob-password"}, follow=True)
    assert "Sign out" in response.content.decode()
    wrong = client.post(reverse("login"), {"username": "bob", "password": "nope"})
    assert "do not match" in wrong.content.decode()
    client.post(reverse("logout"))
    assert client.get(reverse("catalog:dataset_list")).status_code == 302


def test_the_header_names_the_user_and_offers_admin_only_to_admins(client, personas, data):
    client.force_login(personas["bob"])
    page = _page(client, reverse("catalog:dataset_list"))
    assert "bob" in page and "viewer" in page and reverse("admin:index") not in page
    client.force_login(personas["erin"])
    assert reverse("admin:index") in _page(client, reverse("catalog:dataset_list"))


# -- catalog ---------------------------------------------------------------------------


def test_catalog_lists_datasets_with_head_size_and_counts(as_bob, data):
    page = _page(as_bob, reverse("catalog:dataset_list"))
    assert "reviews" in page and "1.1.0" in page and "Product reviews, labelled" in page
    assert "1 dataset" in page
    assert 'class="stage stage-cleaned"' in page


def test_catalog_searches_name_description_keywords_and_owner(as_bob, data, personas, tmp_path):
    push(tmp_path, "weather", {"t.csv": "day,temp\n1,20\n"}, user=personas["alice"])
    weather = Dataset.objects.get(name="weather")
    dataset_update(user=personas["alice"], dataset=weather, owners=["erin"], keywords=["climate"])
    url = reverse("catalog:dataset_list")
    for text, expected, absent in [
        ("review", "reviews", "weather"),
        ("labelled by", "reviews", "weather"),
        ("climate", "weather", "reviews"),
        ("erin", "weather", "reviews"),
        ("nlp alice", "reviews", "weather"),
    ]:
        page = _page(as_bob, f"{url}?q={text}")
        assert f">{expected}<" in page and f">{absent}<" not in page, text
    page = _page(as_bob, f"{url}?q=nothing-like-this")
    assert "No dataset matches" in page


def test_catalog_filters_by_stage_owner_keyword_and_golden(as_bob, data, personas, tmp_path):
    push(tmp_path, "weather", {"t.csv": "day,temp\n1,20\n"}, user=personas["alice"], stage="split")
    Version.objects.filter(dataset__name="weather").update(golden=True)
    url = reverse("catalog:dataset_list")
    assert ">weather<" not in _page(as_bob, f"{url}?stage=cleaned")
    assert ">reviews<" in _page(as_bob, f"{url}?stage=cleaned")
    assert ">reviews<" not in _page(as_bob, f"{url}?stage=split")
    assert ">reviews<" not in _page(as_bob, f"{url}?golden=on")
    assert ">weather<" in _page(as_bob, f"{url}?golden=on")
    assert ">weather<" not in _page(as_bob, f"{url}?keyword=nlp")
    assert ">weather<" in _page(as_bob, f"{url}?owner=alice")
    assert "No dataset matches" in _page(as_bob, f"{url}?owner=dave")


def test_catalog_sorts_by_name_size_and_update(as_bob, data, personas, tmp_path):
    push(tmp_path, "aaa-big", {"big.bin": b"x" * 50_000}, user=personas["alice"])
    url = reverse("catalog:dataset_list")
    by_name = _page(as_bob, f"{url}?sort=name")
    assert by_name.index(">aaa-big<") < by_name.index(">reviews<")
    by_size = _page(as_bob, f"{url}?sort=size")
    assert by_size.index(">aaa-big<") < by_size.index(">reviews<")
    recent = _page(as_bob, f"{url}?sort=updated")
    assert recent.index(">aaa-big<") < recent.index(">reviews<")


def test_catalog_pages_through_many_datasets(as_bob, data):
    clone_datasets(data[2], 30)
    url = reverse("catalog:dataset_list")
    first = _page(as_bob, f"{url}?sort=name")
    assert "31 datasets" in first and "Page 1 of 2" in first and ">bulk-0000<" in first
    second = _page(as_bob, f"{url}?sort=name&page=2")
    assert ">reviews<" in second and ">bulk-0000<" not in second
    assert "Page 2 of 2" in _page(as_bob, f"{url}?sort=name&page=99")  # past the end: the last page
    assert "Page 1 of 2" in _page(as_bob, f"{url}?sort=name&page=nope")


def test_catalog_says_when_there_is_nothing_yet(as_bob):
    page = _page(as_bob, reverse("catalog:dataset_list"))
    assert "No datasets yet" in page and "strata push" in page


def test_catalog_hides_restricted_datasets_from_outsiders(client, data, personas):
    dataset_update(user=personas["alice"], dataset=data[0], visibility="restricted")
    client.force_login(personas["bob"])
    assert ">reviews<" not in _page(client, reverse("catalog:dataset_list"))
    assert ">reviews<" not in _page(client, reverse("catalog:dataset_list") + "?q=nlp")
    _page(client, reverse("catalog:dataset_detail", args=["reviews"]), status=404)
    client.force_login(personas["alice"])
    assert ">reviews<" in _page(client, reverse("catalog:dataset_list"))


def test_catalog_search_answers_htmx_with_the_results_only(as_bob, data):
    response = as_bob.get(reverse("catalog:dataset_list") + "?q=rev", HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert ">reviews<" in page and "<html" not in page


@pytest.mark.parametrize("user", ["bob", "erin"])
def test_catalog_query_count_is_pinned_and_does_not_grow(
    client, data, personas, django_assert_max_num_queries, user
):
    client.force_login(personas[user])
    url = reverse("catalog:dataset_list") + "?q=e&sort=size&keyword=bulk"
    with django_assert_max_num_queries(CATALOG_QUERIES):
        _page(client, url)
    clone_datasets(data[2], 40, versions=3)
    from django.core.cache import cache

    cache.clear()
    with django_assert_max_num_queries(CATALOG_QUERIES) as captured:
        page = _page(client, url)
    assert "40 datasets match" in page, page
    assert len(captured.captured_queries) <= CATALOG_QUERIES


# -- dataset page -------------------------------------------------------------------------


def test_dataset_page_shows_everything_said_about_it(as_bob, data):
    dataset, first, second = data
    page = _page(as_bob, reverse("catalog:dataset_detail", args=["reviews"]))
    for text in [
        "Product reviews, labelled by sentiment.",
        "Head of main",
        "1.1.0",
        "1.0.0",
        "Clean labels",
        "First cut",
        "alice",
        ">nlp<",
        "Logical size",
        "Stored",
        "status-active",
        'class="ref branch"',
    ]:
        assert text in page, text
    assert "Upload a version" not in page  # bob is a viewer
    assert f"from={first.id}" in page  # each version links to its changes


def test_dataset_page_marks_golden_and_rolled_back_versions(as_bob, data):
    dataset, first, second = data
    Version.objects.filter(pk=first.pk).update(rolled_back=True, rolled_back_reason="bad labels")
    Version.objects.filter(pk=second.pk).update(golden=True)
    page = _page(as_bob, reverse("catalog:dataset_detail", args=["reviews"]))
    assert "status-rolled-back" in page and 'title="bad labels"' in page and "status-golden" in page


def test_dataset_page_offers_stewards_the_write_buttons(client, data, personas):
    client.force_login(personas["alice"])
    page = _page(client, reverse("catalog:dataset_detail", args=["reviews"]))
    assert "Upload a version" in page and "Edit details" in page


def test_dataset_page_query_count_is_pinned(as_bob, data, django_assert_max_num_queries, tmp_path, personas):
    url = reverse("catalog:dataset_detail", args=["reviews"])
    with django_assert_max_num_queries(DATASET_QUERIES):
        _page(as_bob, url)
    for index in range(3):
        push(tmp_path, "reviews", {"more.txt": str(index)}, user=personas["alice"])
    with django_assert_max_num_queries(DATASET_QUERIES):
        _page(as_bob, url)


def test_an_unknown_dataset_is_a_404_naming_it(as_bob, db):
    page = _page(as_bob, reverse("catalog:dataset_detail", args=["nope"]), status=404)
    assert "There is no dataset named &#x27;nope&#x27;" in page and "Go to the datasets" in page


# -- version page and files --------------------------------------------------------------------


def test_version_page_lists_a_folder_with_sizes_digests_and_the_pull_command(as_bob, data):
    _, _, second = data
    url = reverse("catalog:version_detail", args=["reviews", "1.1.0"])
    page = _page(as_bob, url)
    assert "python manage.py strata pull reviews@1.1.0 DEST" in page
    assert "train/" in page and "README.md" in page and "Download .tar" in page
    folder = _page(as_bob, url + "?path=train")
    assert "part-0.csv" in folder and "part-1.csv" in folder and "README.md" not in folder
    assert "Up a folder" in folder
    # The same version by id, and its folder as an htmx partial.
    assert "strata pull reviews@1.1.0" in _page(
        as_bob, reverse("catalog:version_detail", args=["reviews", second.id])
    )
    partial = as_bob.get(url + "?path=train", HTTP_HX_REQUEST="true").content.decode()
    assert "part-0.csv" in partial and "<html" not in partial


def test_version_page_query_count_is_pinned(as_bob, data, django_assert_max_num_queries):
    with django_assert_max_num_queries(VERSION_QUERIES):
        _page(as_bob, reverse("catalog:version_detail", args=["reviews", "1.1.0"]))
    with django_assert_max_num_queries(VERSION_QUERIES + 1):  # one more tree for the folder
        _page(as_bob, reverse("catalog:version_detail", args=["reviews", "1.1.0"]) + "?path=train")


def test_a_path_not_in_the_version_says_so(as_bob, data):
    url = reverse("catalog:version_detail", args=["reviews", "1.1.0"])
    page = _page(as_bob, url + "?path=nowhere/else", status=404)
    assert "nowhere/else is not in reviews@1.1.0" in page
    page = _page(
        as_bob, reverse("catalog:file_detail", args=["reviews", "1.1.0", "train/missing.csv"]), status=404
    )
    assert "train/missing.csv is not in reviews@1.1.0" in page
    page = _page(as_bob, reverse("catalog:file_download", args=["reviews", "1.1.0", "train"]), status=404)
    assert "is not a file" in page
    page = _page(as_bob, reverse("catalog:version_detail", args=["reviews", "9.9.9"]), status=404)
    assert "reviews has no version 9.9.9" in page


def test_a_path_naming_a_file_opens_the_file_page(as_bob, data):
    response = as_bob.get(reverse("catalog:version_detail", args=["reviews", "1.1.0"]) + "?path=README.md")
    assert response.status_code == 302
    assert response.url == reverse("catalog:file_detail", args=["reviews", "1.1.0", "README.md"])


def test_csv_preview_shows_the_first_rows_as_a_table(as_bob, data):
    page = _page(as_bob, reverse("catalog:file_detail", args=["reviews", "1.1.0", "train/part-0.csv"]))
    assert '<th scope="col">text</th>' in page and "<td>broke in a week</td>" in page
    assert "3 rows shown" in page


def test_jsonl_text_parquet_and_image_previews(as_bob, data):
    def preview(path):
        return _page(as_bob, reverse("catalog:file_detail", args=["reviews", "1.1.0", path]))

    jsonl = preview("meta/labels.jsonl")
    assert '<th scope="col">label</th>' in jsonl and "<td>b</td>" in jsonl
    assert "Product reviews with a sentiment label." in preview("README.md")
    parquet = preview("features.parquet")
    assert "3 rows" in parquet and "<code>score</code>" in parquet and "<code>double</code>" in parquet
    assert "<td>dog</td>" in parquet
    image = preview("images/cat.png")
    thumbnail_url = reverse("catalog:file_thumbnail", args=["reviews", "1.1.0", "images/cat.png"])
    assert thumbnail_url in image
    response = as_bob.get(thumbnail_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


def test_a_large_csv_preview_reads_only_its_start(as_bob, data, personas, tmp_path):
    rows = "".join(f"{i},{'x' * 60}\n" for i in range(60_000))  # about 4 MiB
    push(tmp_path, "big", {"big.csv": "id,text\n" + rows}, user=personas["alice"])
    page = _page(as_bob, reverse("catalog:file_detail", args=["big", "1.0.0", "big.csv"]))
    assert "50 rows shown: the first of the file" in page


def test_file_download_streams_the_exact_bytes(client, personas, store_url, tmp_path):
    content = bytes(range(256)) * 2000
    push(tmp_path, "blobs", {"data/blob.bin": content, "a.csv": "x\n1\n"}, user=personas["alice"])
    client.force_login(personas["bob"])
    response = client.get(reverse("catalog:file_download", args=["blobs", "1.0.0", "data/blob.bin"]))
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content) == content
    assert response["Content-Length"] == str(len(content))
    assert response["Content-Disposition"] == 'attachment; filename="blob.bin"'


def test_tar_download_holds_every_file(client, personas, store_url, tmp_path):
    push(tmp_path, "blobs", {"data/blob.bin": b"\x01" * 100_000, "a.csv": "x\n1\n"}, user=personas["alice"])
    client.force_login(personas["bob"])
    response = client.get(reverse("catalog:version_tar", args=["blobs", "1.0.0"]))
    assert response.status_code == 200 and response.streaming
    assert 'filename="blobs-1.0.0.tar"' in response["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert sorted(archive.getnames()) == ["a.csv", "data", "data/blob.bin"]
        assert archive.extractfile("data/blob.bin").read() == b"\x01" * 100_000


# -- compare ----------------------------------------------------------------------------------


def test_compare_lists_added_removed_and_modified_files_with_size_deltas(as_bob, data):
    url = reverse("catalog:compare", args=["reviews"])
    page = _page(as_bob, f"{url}?from=1.0.0&to=1.1.0")
    assert "2 added" in page and "1 removed" in page and "1 modified" in page
    assert "train/part-1.csv" in page and "notes.txt" in page and "images/cat.png" in page
    assert "README.md" not in page.split("<table")[-1]  # unchanged files are not listed
    # Links go into the previews of the right version.
    assert reverse("catalog:file_detail", args=["reviews", "1.1.0", "train/part-1.csv"]) in page
    assert reverse("catalog:file_detail", args=["reviews", "1.0.0", "notes.txt"]) in page
    assert "+" in page and "−" in page


def test_compare_without_a_query_shows_the_head_against_its_parent(as_bob, data):
    page = _page(as_bob, reverse("catalog:compare", args=["reviews"]))
    assert "2 added" in page


def test_compare_of_a_version_with_itself_says_identical(as_bob, data):
    page = _page(as_bob, reverse("catalog:compare", args=["reviews"]) + "?from=1.1.0&to=1.1.0")
    assert "the files are identical" in page


@pytest.mark.parametrize(
    "query, message",
    [
        ("from=1.0.0", "both “from” and “to” are needed"),
        ("to=1.0.0", "both “from” and “to” are needed"),
        ("from=1.0.0&to=7.7.7", "reviews has no version 7.7.7"),
        (
            "from=%3Cscript%3E&to=1.0.0",
            "reviews has no branch, tag, version or id &#x27;&lt;script&gt;&#x27;",
        ),
        ("from=" + "x" * 300 + "&to=1.0.0", "Those do not look like versions"),
    ],
)
def test_a_malformed_compare_query_says_what_is_wrong(as_bob, data, query, message):
    page = _page(as_bob, reverse("catalog:compare", args=["reviews"]) + "?" + query, status=400)
    assert message in page
    assert '<select name="from">' in page  # the pickers are there to try again


# -- error pages ----------------------------------------------------------------------------------


def test_unknown_addresses_get_the_sites_404(as_bob):
    page = _page(as_bob, "/no/such/page/", status=404)
    assert "There is nothing at this address." in page and "Strata" in page


def test_an_internal_error_shows_a_reference(client, personas, data, monkeypatch, caplog):
    from catalog import selectors

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(selectors, "dataset_overview", broken)
    client.raise_request_exception = False
    client.force_login(personas["bob"])
    response = client.get(reverse("catalog:dataset_detail", args=["reviews"]))
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong" in page and "reference" in page
    reference = page.split("reference <code>")[1].split("</code>")[0]
    assert any(reference in record.getMessage() for record in caplog.records)


def test_relative_dates_carry_the_exact_time(as_bob, data):
    page = _page(as_bob, reverse("catalog:dataset_detail", args=["reviews"]))
    assert '<time datetime="' in page and "just now" in page and ' UTC">' in page


def test_pages_without_access_are_404_not_403(client, data, personas):
    dataset_update(user=personas["alice"], dataset=data[0], visibility="restricted")
    client.force_login(personas["dave"])
    for url in [
        reverse("catalog:dataset_detail", args=["reviews"]),
        reverse("catalog:version_detail", args=["reviews", "1.0.0"]),
        reverse("catalog:file_detail", args=["reviews", "1.0.0", "README.md"]),
        reverse("catalog:file_download", args=["reviews", "1.0.0", "README.md"]),
        reverse("catalog:version_tar", args=["reviews", "1.0.0"]),
        reverse("catalog:compare", args=["reviews"]),
        reverse("catalog:upload", args=["reviews"]),
        reverse("catalog:dataset_edit", args=["reviews"]),
    ]:
        assert client.get(url).status_code == 404, url


def test_restricted_datasets_are_visible_to_owners_groups_and_admins_only(data, personas, tmp_path):
    """The visibility rule the catalog and the API lists share
    (`permissions.visible_datasets`), written to plan well at scale."""
    from django.contrib.auth.models import Group

    from catalog import permissions

    alice = personas["alice"]
    team = Group.objects.create(name="team")
    personas["bob"].groups.add(team)
    for name, visibility, groups in [
        ("open", "public", []),
        ("mine", "restricted", []),
        ("team", "restricted", ["team"]),
    ]:
        push(tmp_path, name, {"x.txt": name}, user=alice)
        dataset_update(
            user=alice, dataset=Dataset.objects.get(name=name), visibility=visibility, groups=groups
        )
    expected = {
        "alice": {"open", "mine", "team"},  # the owner
        "bob": {"open", "team"},  # through the group
        "carol": {"open"},
        "dave": {"open"},
        "erin": {"open", "mine", "team"},  # an admin
    }
    ours = {"open", "mine", "team"}
    for name, user in personas.items():
        if name in expected:
            seen = set(permissions.visible_datasets(user).values_list("name", flat=True)) & ours
            assert seen == expected[name], name
    assert set(permissions.visible_datasets(None).values_list("name", flat=True)) >= ours


@pytest.mark.slow
def test_downloads_stream_with_memory_bounded_whatever_the_size(client, personas, local_store, tmp_path):
    """A 160 MiB version goes out as a tar and as one file while the process holds
    at most the store's read-ahead window of it (a few spans of 16 MiB), however
    large the version: so a 10 GB version streams in the same memory."""
    import os
    import tracemalloc

    from catalog.services.versions import version_push

    size = 160 * 1024 * 1024
    source = tmp_path / "big"
    source.mkdir()
    with open(source / "blob.bin", "wb") as handle:
        for _ in range(size // (1 << 20)):
            handle.write(os.urandom(1 << 20))
    version_push(path=str(source), dataset_name="large", user=personas["alice"])
    client.force_login(personas["bob"])
    for url in [
        reverse("catalog:version_tar", args=["large", "1.0.0"]),
        reverse("catalog:file_download", args=["large", "1.0.0", "blob.bin"]),
    ]:
        response = client.get(url)
        tracemalloc.start()
        total = sum(len(block) for block in response.streaming_content)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total >= size
        print(f"{url}: peak {peak / 2**20:.1f} MiB for {size / 2**20:.0f} MiB")
        assert peak < 100 * 1024 * 1024, f"{url} held {peak / 2**20:.1f} MiB at once"


def test_a_dataset_with_no_version_yet_shows_calm_empty_states(client, personas, local_store):
    from catalog.services.datasets import dataset_create

    dataset_create(user=personas["alice"], name="empty-one", description="Nothing pushed yet.")
    client.force_login(personas["alice"])
    assert "no versions" in _page(client, reverse("catalog:dataset_list"))
    page = _page(client, reverse("catalog:dataset_detail", args=["empty-one"]))
    assert "No versions yet." in page and "Upload the first one" in page
    assert "has no versions to compare yet" in _page(client, reverse("catalog:compare", args=["empty-one"]))
