"""`strata verify` re-hashes every file whole against its digest, and removes the
spool files that killed pushes left once they are a day old."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from blake3 import blake3

from catalog.models import FileManifest
from catalog.tasks import verify_store
from tests.factories.files import write_random

DAY = 24 * 3600


def _push_training_data(cli, tmp_path) -> Path:
    """reviews@1.0.0: a file of many chunks in a folder, and two small files."""
    data = tmp_path / "data"
    write_random(data / "train" / "big.bin", 1_000_000, 1)
    (data / "a.txt").write_bytes(b"a" * 1000)
    (data / "b.txt").write_bytes(b"b" * 1000)
    cli("push", str(data), "reviews", check=True)
    return data


def test_verify_passes_a_sound_store_hashing_each_file_once_however_many_versions_hold_it(cli, tmp_path):
    data = _push_training_data(cli, tmp_path)
    (data / "c.txt").write_bytes(b"c" * 1000)
    cli("push", str(data), "reviews", check=True)

    verified = cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Checked 2 versions" in verified.stdout
    assert "BROKEN" not in verified.stdout and "OK: every reachable byte verified." in verified.stdout

    as_json = json.loads(cli("verify", "--json", check=True).stdout)
    assert as_json["ok"] and as_json["broken"] == [] and as_json["mismatched_files"] == []
    # big.bin is in both versions and is the one file of several chunks.
    assert as_json["files"] == 4 and as_json["files_hashed"] == 1


def test_verify_names_a_file_whose_manifest_lists_its_chunks_out_of_order(cli, tmp_path):
    data = _push_training_data(cli, tmp_path)
    digest = blake3((data / "train" / "big.bin").read_bytes()).hexdigest()
    manifest = FileManifest.objects.get(digest=digest)
    chunk_ids = manifest.chunk_list()
    assert len(chunk_ids) > 2
    # Every chunk is sound and the sizes add up: only the whole file's hash tells.
    manifest.chunk_ids = b"".join(bytes.fromhex(chunk_id) for chunk_id in reversed(chunk_ids))
    manifest.save()

    verified = cli("verify")
    assert verified.returncode == 1
    assert (
        f"BROKEN: file train/big.bin of reviews@1.0.0 does not match its digest {digest}" in verified.stdout
    )
    assert verified.stdout.count("BROKEN") == 1
    assert "OK:" not in verified.stdout

    as_json = json.loads(cli("verify", "reviews@1.0.0", "--json").stdout)
    assert not as_json["ok"] and len(as_json["broken"]) == 1
    assert as_json["mismatched_files"] == [
        {"version": "reviews@1.0.0", "path": "train/big.bin", "digest": digest}
    ]
    nightly = verify_store()
    assert not nightly["ok"] and nightly["mismatched_files"] == 1


def test_verify_names_a_small_file_whose_forged_manifest_points_at_another_files_bytes(cli, tmp_path):
    _push_training_data(cli, tmp_path)
    a_digest = blake3(b"a" * 1000).hexdigest()
    b_digest = blake3(b"b" * 1000).hexdigest()
    FileManifest.objects.create(digest=a_digest, size=1000, chunk_ids=bytes.fromhex(b_digest))

    verified = cli("verify", "--json")
    assert verified.returncode == 1
    as_json = json.loads(verified.stdout)
    assert as_json["broken"] == [f"file a.txt of reviews@1.0.0 does not match its digest {a_digest}"]
    assert as_json["mismatched_files"] == [{"version": "reviews@1.0.0", "path": "a.txt", "digest": a_digest}]


def _spool_file(folder: Path, name: str, size: int, age_seconds: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(os.urandom(size))
    written = time.time() - age_seconds
    os.utime(path, (written, written))
    return path


def _spool_folders(settings) -> tuple[Path, Path]:
    """The store's own spool folder and the cache's (the same one for S3)."""
    from catalog.store import get_backend

    return Path(get_backend().spool_dir()), Path(settings.STRATA_CACHE_DIR) / "spool"


def test_verify_removes_spool_files_a_day_old_and_leaves_a_running_pushs_alone(strata, settings):
    store_spool, cache_spool = _spool_folders(settings)
    killed_push = _spool_file(store_spool, "pack-killed.tmp", 1024 * 1024, 2 * DAY)
    killed_receive = _spool_file(cache_spool, "recv-killed.tmp", 512 * 1024, DAY + 60)
    running_push = _spool_file(store_spool, "pack-running.tmp", 1024, 60)
    not_ours = _spool_file(cache_spool, "notes.tmp", 10, 3 * DAY)

    text = strata("verify")
    assert "removed 2 spool files (1.5 MiB) left by interrupted pushes" in text
    assert "OK: every reachable byte verified." in text
    assert not killed_push.exists() and not killed_receive.exists()
    assert running_push.exists() and not_ours.exists()

    another_killed_push = _spool_file(store_spool, "pack-another.tmp", 2048, 2 * DAY)
    nightly = verify_store()
    assert nightly["ok"] and nightly["spool_files_removed"] == 1
    assert not another_killed_push.exists() and running_push.exists()


def test_verify_with_keep_spool_lists_old_spool_files_and_removes_none(strata, settings):
    store_spool, _cache_spool = _spool_folders(settings)
    killed_push = _spool_file(store_spool, "pack-killed.tmp", 4096, 2 * DAY)
    running_push = _spool_file(store_spool, "pack-running.tmp", 1024, 60)

    text = strata("verify", "--keep-spool")
    assert "1 spool file (4.0 KiB) left by interrupted pushes, older than a day, not removed:" in text
    assert f"  spool {killed_push} 4.0 KiB, 2.0 days old" in text
    assert "removed 1 spool file" not in text

    as_json = json.loads(strata("verify", "--keep-spool", "--json"))
    assert as_json["ok"]
    [listed] = as_json["spool_files"]
    assert set(listed) == {"path", "size", "age_seconds", "removed"}
    assert listed["path"] == str(killed_push) and listed["size"] == 4096 and listed["removed"] is False
    assert 2 * DAY - 60 <= listed["age_seconds"] <= 2 * DAY + 60
    assert killed_push.exists() and running_push.exists()

    as_json = json.loads(strata("verify", "--json"))
    assert [entry["removed"] for entry in as_json["spool_files"]] == [True]
    assert not killed_push.exists() and running_push.exists()
