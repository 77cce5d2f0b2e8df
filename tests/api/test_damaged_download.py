"""Stored bytes that fail verification are never served as a success: a download
whose first bytes are damaged answers the documented JSON error, and one damaged
further on is cut short — either way the access log records the real status."""

from __future__ import annotations

import logging

import pytest

from catalog.errors import IntegrityFailure
from catalog.models import Chunk, FileManifest
from catalog.services.versions import version_push
from tests.factories.files import write_random
from tests.factories.store import flip_pack_byte


@pytest.fixture
def access_log(caplog):
    logger = logging.getLogger("strata.request")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="strata.request")
    yield caplog
    logger.removeHandler(caplog.handler)


def _statuses(access_log, path: str) -> list[int]:
    # Each record once, whether it reached the handler directly or through the root.
    records = {id(record): record for record in access_log.records if record.name == "strata.request"}
    return [record.status for record in records.values() if getattr(record, "path", "") == path]


def _push(personas, tmp_path, files: dict[str, bytes]) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
    version_push(path=str(source), dataset_name="fragile", user=personas["alice"])


def _damage_chunk(chunk_id: str) -> None:
    chunk = Chunk.objects.get(pk=chunk_id)
    flip_pack_byte(chunk.pack_id, chunk.offset + chunk.stored_length // 2)


def test_a_damaged_small_file_is_answered_with_a_json_502_and_logged_as_one(
    api, personas, store_url, tmp_path, access_log
):
    _push(personas, tmp_path, {"notes.txt": b"fine\n" * 1000})
    (chunk,) = Chunk.objects.all()  # a small file is one chunk
    _damage_chunk(chunk.pk)
    path = "/datasets/fragile/versions/main/files/notes.txt"
    response = api("alice").get(path)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("application/json")
    assert "cannot read notes.txt" in response.json()["error"]
    assert _statuses(access_log, "/api/v1" + path) == [502]


def test_a_file_damaged_half_way_is_cut_short_and_logged_as_a_502(
    api, personas, store_url, tmp_path, access_log
):
    write_random(tmp_path / "big.bin", 24 * 1024 * 1024, seed=7)
    _push(personas, tmp_path, {"big.bin": (tmp_path / "big.bin").read_bytes()})
    chunk_ids = FileManifest.objects.get().chunk_list()
    assert len(chunk_ids) > 4, len(chunk_ids)
    _damage_chunk(chunk_ids[-1])
    path = "/datasets/fragile/versions/main/files/big.bin"
    response = api("alice").get(path)
    assert response.status_code == 200  # its first bytes were sound and are on their way
    with pytest.raises(IntegrityFailure):
        b"".join(response.streaming_content)
    assert _statuses(access_log, "/api/v1" + path) == [502]
