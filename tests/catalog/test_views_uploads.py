"""Uploading versions from the browser: files and archives become versions, and bad
input — over the limit, unsafe archive entries, no files — is refused with a clear
message and nothing stored."""

from __future__ import annotations

import io
import os
import tarfile
import warnings
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog.models import Dataset, Pack, Version
from catalog.selectors.exports import file_stream
from catalog.services.uploads import UploadLimitHandler
from tests.factories.datasets import push

pytestmark = pytest.mark.django_db


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return out.getvalue()


def _tar(entries: dict[str, bytes], mode: str = "w:gz", link: tuple[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            archive.addfile(info)
    return out.getvalue()


@pytest.fixture
def steward(client, personas):
    client.force_login(personas["alice"])
    return client


@pytest.fixture
def existing(personas, store_url, tmp_path):
    push(tmp_path, "shots", {"keep.txt": "kept"}, user=personas["alice"], message="first")
    return Dataset.objects.get(name="shots")


def _post(client, files, dataset="shots", **fields):
    data = {"branch": "main", "message": "from the browser", "stage": "", **fields, "files": files}
    return client.post(reverse("catalog:upload", args=[dataset]), data)


def _stored(settings) -> tuple[int, int, int]:
    """Versions, pack rows and leftover staging folders: all must stay put on refusal."""
    staging = os.path.join(settings.STRATA_CACHE_DIR, "uploads")
    leftovers = len(os.listdir(staging)) if os.path.isdir(staging) else 0
    return Version.objects.count(), Pack.objects.count(), leftovers


def _read(version: Version, path: str) -> bytes:
    return b"".join(file_stream(version, path).chunks)


# -- what works -------------------------------------------------------------------------


def test_a_steward_uploads_files_as_a_new_version(steward, existing):
    response = _post(
        steward,
        [SimpleUploadedFile("a.csv", b"id\n1\n"), SimpleUploadedFile("b.txt", b"bee")],
        stage="cleaned",
    )
    assert response.status_code == 302 and response.url.endswith("/versions/1.1.0/")
    version = Version.objects.get(dataset=existing, semver="1.1.0")
    assert (version.message, version.stage, version.author, version.file_count) == (
        "from the browser",
        "cleaned",
        "alice",
        2,
    )
    assert _read(version, "b.txt") == b"bee"
    page = steward.get(response.url).content.decode()
    assert "Stored shots 1.1.0 on main: 2 files" in page


def test_a_zip_and_a_tar_gz_are_unpacked_into_the_version(steward, existing):
    archive = _zip({"train/a.csv": b"id\n1\n", "train/": b"", "README.md": b"hello"})
    assert _post(steward, [SimpleUploadedFile("data.zip", archive)]).status_code == 302
    version = Version.objects.get(dataset=existing, semver="1.1.0")
    assert _read(version, "train/a.csv") == b"id\n1\n" and version.file_count == 2
    # The table stays (removing one would be a major change, numbered 2.0.0).
    archive = _tar({"./images/x.bin": b"\x00\x01" * 1000, "train/a.csv": b"id\n1\n"})
    assert _post(steward, [SimpleUploadedFile("more.tar.gz", archive)]).status_code == 302
    version = Version.objects.get(dataset=existing, semver="1.2.0")
    assert _read(version, "images/x.bin") == b"\x00\x01" * 1000


def test_an_identical_upload_makes_no_version(steward, existing):
    response = _post(steward, [SimpleUploadedFile("keep.txt", b"kept")])
    assert response.status_code == 302
    assert Version.objects.filter(dataset=existing).count() == 1
    assert "Nothing changed" in steward.get(response.url).content.decode()


def test_a_new_dataset_is_created_by_its_first_upload(steward, personas, store_url):
    response = steward.post(
        reverse("catalog:dataset_new"),
        {"name": "fresh", "message": "hello", "stage": "raw", "files": [SimpleUploadedFile("f.txt", b"f")]},
    )
    assert response.status_code == 302
    dataset = Dataset.objects.get(name="fresh")
    assert list(dataset.owners.all()) == [personas["alice"]]
    assert dataset.versions.get().semver == "1.0.0"


def test_a_new_dataset_needs_a_valid_free_name(steward, existing, settings):
    before = _stored(settings)
    for name, message in [
        ("shots", "A dataset named shots already exists"),
        ("../x", "is not a valid dataset name"),
    ]:
        response = steward.post(
            reverse("catalog:dataset_new"),
            {"name": name, "stage": "raw", "files": [SimpleUploadedFile("f.txt", b"f")]},
        )
        assert response.status_code == 400 and message in response.content.decode()
    assert _stored(settings) == before


# -- bad input: a clear message, nothing stored ------------------------------------------------


def test_an_upload_over_the_limit_is_refused_with_nothing_stored(steward, existing, settings):
    settings.STRATA_UPLOAD_MAX_BYTES = 4096
    before = _stored(settings)
    response = _post(steward, [SimpleUploadedFile("big.bin", os.urandom(20_000))])
    page = response.content.decode()
    assert response.status_code == 413
    assert "larger than the limit of 4.0 KiB; nothing was stored" in page
    assert "from the browser" in page  # the form keeps what was typed
    assert _stored(settings) == before


def test_an_archive_that_unpacks_past_the_limit_is_refused(steward, existing, settings):
    settings.STRATA_UPLOAD_MAX_BYTES = 64 * 1024
    bomb = _zip({"zeros.bin": b"\0" * (2 * 1024 * 1024)})
    assert len(bomb) < 64 * 1024
    before = _stored(settings)
    response = _post(steward, [SimpleUploadedFile("bomb.zip", bomb)])
    assert response.status_code == 413 and "larger than the limit" in response.content.decode()
    assert _stored(settings) == before


def _zip_entries(entries: list[tuple[str, bytes | None]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A .zip of entries in this order (a name may come twice); None is a folder."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", method) as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": that is the point
        for name, content in entries:
            if content is None:
                archive.mkdir(name)
            else:
                info = zipfile.ZipInfo(name)
                info.compress_type = method
                archive.writestr(info, content)
    return out.getvalue()


def _tar_entries(entries: list[tuple[str, bytes | None]], mode: str = "w:gz") -> bytes:
    """A tar of entries in this order (a name may come twice); None is a folder."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _corrupt_deflate() -> bytes:
    """A .zip whose one entry's deflate stream starts with a reserved block type."""
    data = bytearray(_zip({"a.txt": b"hello " * 1000}))
    data[30 + len("a.txt")] = 0xFF  # first byte after the local header
    return bytes(data)


def _bad_zip_crc() -> bytes:
    """A stored (uncompressed) entry with one byte changed: only its CRC can tell."""
    data = bytearray(_zip_entries([("a.txt", b"hello " * 100)], method=zipfile.ZIP_STORED))
    data[30 + len("a.txt") + 10] ^= 0x01
    return bytes(data)


def _bad_gzip_crc() -> bytes:
    data = bytearray(_tar({"a.txt": os.urandom(20_000)}))
    data[-8] ^= 0xFF  # the gzip trailer: CRC-32, then the length
    return bytes(data)


def _truncated_tar_gz() -> bytes:
    data = _tar({"a.bin": os.urandom(200_000)})
    return data[: len(data) * 2 // 3]


def _bad_tar_header() -> bytes:
    """An uncompressed tar whose second header fails its checksum (Python's tarfile
    would silently take it as the end of the archive)."""
    data = bytearray(_tar({"a.txt": b"a" * 10, "b.txt": b"b" * 10}, mode="w"))
    data[1024] ^= 0x01  # the first byte of the second header's name
    return bytes(data)


LONG_NAME = "n" * 300

UNSAFE_ARCHIVES = [
    ("up.zip", _zip({"ok.txt": b"ok", "../evil.txt": b"x"}), "climbs out of its folder (../evil.txt)"),
    ("deep.zip", _zip({"a/../../evil.txt": b"x"}), "climbs out of its folder (a/../../evil.txt)"),
    ("abs.zip", _zip({"/etc/evil.txt": b"x"}), "an absolute path (/etc/evil.txt)"),
    ("win.zip", _zip({"C:\\evil.txt": b"x"}), "an absolute path (C:\\evil.txt)"),
    ("up.tar.gz", _tar({"ok.txt": b"ok", "../evil.txt": b"x"}), "climbs out of its folder (../evil.txt)"),
    ("abs.tar", _tar({"/tmp/evil.txt": b"x"}, mode="w"), "an absolute path (/tmp/evil.txt)"),
    ("link.tgz", _tar({"ok.txt": b"ok"}, link=("l", "/etc/passwd")), "holds a link (l)"),
    ("broken.zip", b"PK\x03\x04 not really a zip", "is not a readable .zip file"),
    ("broken.tar", b"not a tar at all" * 100, "is not a readable .tar archive"),
    # entries that clash, or that no filesystem can hold
    (
        "file-then-folder.zip",
        _zip_entries([("a", b"x"), ("a/b.txt", b"y")]),
        "holds a both as a file and as a folder",
    ),
    (
        "folder-then-file.zip",
        _zip_entries([("a/b.txt", b"y"), ("a", b"x")]),
        "holds a both as a file and as a folder",
    ),
    (
        "folder-then-file.tar.gz",
        _tar_entries([("a", None), ("a", b"x")]),
        "holds a both as a file and as a folder",
    ),
    ("twice.zip", _zip_entries([("a.txt", b"1"), ("a.txt", b"2")]), "holds a.txt twice"),
    ("twice.tar", _tar_entries([("a.txt", b"1"), ("a.txt", b"2")], mode="w"), "holds a.txt twice"),
    ("long.zip", _zip({f"d/{LONG_NAME}": b"x"}), "has a name of 300 bytes"),
    ("long.tar.gz", _tar({LONG_NAME: b"x"}), "has a name of 300 bytes"),
    # damaged bytes: each is caught by the format's own checks, read to the end
    ("deflate.zip", _corrupt_deflate(), "is damaged at a.txt"),
    ("crc.zip", _bad_zip_crc(), "is damaged at a.txt (Bad CRC-32"),
    ("crc.tar.gz", _bad_gzip_crc(), "is damaged at its end (CRC check failed"),
    ("truncated.tar.gz", _truncated_tar_gz(), "is damaged at"),
    ("header.tar", _bad_tar_header(), "is damaged at the entry after a.txt (bad header"),
]


# Named by file: the archives' bytes hold a time, and test ids must be the same in
# every test process.
@pytest.mark.parametrize(
    "filename, archive, message", [pytest.param(*row, id=row[0]) for row in UNSAFE_ARCHIVES]
)
def test_an_unsafe_or_broken_archive_is_refused_with_nothing_stored(
    steward, existing, settings, tmp_path, filename, archive, message
):
    before = _stored(settings)
    response = _post(steward, [SimpleUploadedFile(filename, archive)])
    page = response.content.decode()
    assert response.status_code == 400, page[:2000]
    assert message in page.replace("&#x27;", "'"), page[:3000]
    assert _stored(settings) == before
    assert not (tmp_path.parent / "evil.txt").exists()


def test_an_archive_of_more_entries_than_allowed_is_refused(steward, existing, settings):
    settings.STRATA_UPLOAD_MAX_ENTRIES = 3
    before = _stored(settings)
    many = _zip({f"f{number}.txt": b"x" for number in range(5)})
    response = _post(steward, [SimpleUploadedFile("many.zip", many)])
    assert response.status_code == 413
    assert "holds more than 3 files and folders, so nothing was stored" in response.content.decode()
    response = _post(
        steward, [SimpleUploadedFile("many.tar.gz", _tar({f"f{n}.txt": b"x" for n in range(5)}))]
    )
    assert response.status_code == 413 and "more than 3 files and folders" in response.content.decode()
    assert _stored(settings) == before


def test_a_file_name_no_filesystem_can_hold_is_refused(steward, existing, settings):
    before = _stored(settings)
    name = "é" * 200 + ".txt"  # 200 characters, but 404 bytes
    response = _post(steward, [SimpleUploadedFile(name, b"x")])
    page = response.content.decode()
    assert response.status_code == 400 and "is not a file name that can be stored" in page
    assert "has a name of 404 bytes" in page
    assert _stored(settings) == before


def test_a_plain_file_and_an_archive_entry_of_the_same_name_clash(steward, existing, settings):
    before = _stored(settings)
    response = _post(
        steward, [SimpleUploadedFile("a", b"file"), SimpleUploadedFile("x.zip", _zip({"a/b.txt": b"entry"}))]
    )
    assert response.status_code == 400
    assert "x.zip holds a both as a file and as a folder" in response.content.decode()
    assert _stored(settings) == before


def test_an_upload_with_no_files_says_so(steward, existing, settings):
    before = _stored(settings)
    response = _post(steward, [])
    assert response.status_code == 400 and "Choose at least one file" in response.content.decode()
    response = _post(steward, [SimpleUploadedFile("empty.zip", _zip({"folder/": b""}))])
    assert response.status_code == 400 and "The upload holds no files" in response.content.decode()
    assert _stored(settings) == before


def test_an_unknown_branch_is_refused_by_the_form(steward, existing):
    response = _post(steward, [SimpleUploadedFile("x.txt", b"x")], branch="nope")
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


def test_the_limit_handler_stops_reading_past_the_limit():
    from django.core.files.uploadhandler import StopUpload

    class Request:
        pass

    request = Request()
    handler = UploadLimitHandler(request, limit=10)
    handler.handle_raw_input(None, {}, 5_000_000, b"", None)
    with pytest.raises(StopUpload):
        handler.new_file("files", "big.bin", "application/octet-stream", None)
    assert "larger than the limit of 10 B" in request.upload_refused
    handler = UploadLimitHandler(request, limit=10)
    handler.handle_raw_input(None, {}, 100, b"", None)
    assert handler.receive_data_chunk(b"12345", 0) == b"12345"
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"123456", 5)
