"""A version streams out as one file or a tar, verified, with flat memory."""

from __future__ import annotations

import io
import tarfile

import pytest

from catalog.errors import NotFound
from catalog.selectors import resolve_spec
from catalog.selectors.exports import file_stream, tar_stream
from catalog.services.versions import version_push
from tests.factories.files import write_random


def test_tar_stream_holds_every_file_byte_for_byte(db, store_url, tmp_path):
    source = tmp_path / "src"
    (source / "nested" / "deeper").mkdir(parents=True)
    write_random(source / "nested" / "blob.bin", 700_000, seed=5)
    (source / "nested" / "deeper" / "note.txt").write_text("hello")
    (source / "empty.txt").write_text("")
    version_push(path=str(source), dataset_name="tarred", author="alice")
    _, version = resolve_spec("tarred")
    with tarfile.open(fileobj=io.BytesIO(b"".join(tar_stream(version)))) as archive:
        names = sorted(archive.getnames())
        assert names == ["empty.txt", "nested", "nested/blob.bin", "nested/deeper", "nested/deeper/note.txt"]
        assert archive.extractfile("nested/blob.bin").read() == (source / "nested" / "blob.bin").read_bytes()
        assert archive.extractfile("nested/deeper/note.txt").read() == b"hello"


def test_file_stream_serves_one_file_and_refuses_others(db, store_url, tmp_path):
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "a.csv").write_text("id,label\n1,cat\n")
    version_push(path=str(source), dataset_name="one", author="alice")
    _, version = resolve_spec("one")
    stream = file_stream(version, "d/a.csv")
    assert stream.entry.size == 15 and b"".join(stream.chunks) == b"id,label\n1,cat\n"
    with pytest.raises(NotFound, match="not a file"):
        file_stream(version, "d")
    with pytest.raises(NotFound, match="is not in one@1.0.0"):
        file_stream(version, "d/b.csv")
