"""Repacking against the real catalog and store, on both backends: whatever a run
repacks, every byte of every kept version still reads back and verifies.

A pack is named by the hash of its index and footer, so copying all of a pack's
chunks into a new pack writes a pack with the very same name. The runs must
neither choose that (there is nothing to gain) nor, if asked to, delete what they
have just written.
"""

from __future__ import annotations

import pytest

from catalog.models import Chunk, Pack, Version
from catalog.services.pull import version_pull
from catalog.services.verify import store_verify
from catalog.services.versions import version_push
from catalog.store import get_backend
from lifecycle.models import RetentionRun
from lifecycle.services.retention import retention_advance, retention_plan
from tests.factories.files import tree_digests, write_random
from tests.factories.retention import day, default_policies, pack_of


@pytest.fixture
def kept_tiny_file(db, store_url, tmp_path, settings):
    """A 5-byte file on main (kept forever), its version pinned by a model: a pack
    whose index and footer outweigh its one live chunk."""
    from lineage.models import Node
    from registry.models import ModelPin, ModelVersion

    default_policies()
    settings.STRATA_RETENTION_APPROVAL_BYTES = 10**12
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "tiny.txt").write_bytes(b"hello")
    version = version_push(path=str(folder), dataset_name="reviews", author="alice", branch="main").version
    assert version is not None
    Version.objects.filter(pk=version.pk).update(created=day(0))
    Pack.objects.update(created=day(0), tier_since=day(0))
    node = Node.objects.create(kind=Node.Kind.MODEL, key="model:ranker", label="ranker 1.0.0")
    model = ModelVersion.objects.create(node=node, name="ranker", version="1.0.0")
    ModelPin.objects.create(model=model, role="train", version=version)
    return folder, version


def _assert_reads_back(version: Version, folder, out) -> None:
    version.refresh_from_db()
    assert version.expired is None
    for pack in Pack.objects.all():
        assert get_backend().pack_size(pack.id) == pack.size  # no row without its bytes
    assert store_verify(versions=[version], list_unreferenced=False).ok
    version_pull(version=version, dest=str(out))
    assert tree_digests(out) == tree_digests(folder)


def test_a_kept_tiny_file_still_reads_back_after_a_retention_run(kept_tiny_file, tmp_path):
    folder, version = kept_tiny_file
    pack_id = pack_of(version, "tiny.txt")
    assert Pack.objects.get(pk=pack_id).size > 2 * len(b"hello")  # mostly index and footer

    planned = retention_plan(now=day(1))
    run = retention_advance(run_id=planned.pk)

    assert run.state == RetentionRun.State.DONE, run.error
    _assert_reads_back(version, folder, tmp_path / "out")
    assert pack_of(version, "tiny.txt") == pack_id
    assert pack_id not in [item["pack"] for item in planned.report["repacking"]]  # nothing to gain


def test_repacking_a_pack_whose_chunks_are_all_live_keeps_it_whole(kept_tiny_file, tmp_path):
    """Told to repack it anyway (a plan recorded by an older planner), the run
    writes a pack with the same name and must keep its rows and bytes — also when
    the phase is applied a second time, as after a crash."""
    folder, version = kept_tiny_file
    pack_id = pack_of(version, "tiny.txt")
    chunk_ids = set(Chunk.objects.filter(pack_id=pack_id).values_list("id", flat=True))

    for _attempt in range(2):
        run = retention_plan(now=day(1))
        RetentionRun.objects.filter(pk=run.pk).update(
            actions={"expire": [], "move": [], "repack": [pack_id], "delete": []}
        )
        run = retention_advance(run_id=run.pk)
        assert run.state == RetentionRun.State.DONE, run.error
        assert set(Chunk.objects.filter(pack_id=pack_id).values_list("id", flat=True)) == chunk_ids
        _assert_reads_back(version, folder, tmp_path / f"out-{_attempt}")


MIXES = {
    "all live": {0, 1, 2, 3},
    "all but the tiny file live": {0, 1, 2},
    "only the tiny file live": {3},
    "one big file live": {1},
    "none live": set(),
}


@pytest.mark.parametrize("forced", [False, True], ids=["as planned", "forced"])
@pytest.mark.parametrize("mix", list(MIXES), ids=list(MIXES))
def test_repacking_any_mix_of_live_and_dead_chunks_keeps_every_live_chunk_readable(
    db, store_url, tmp_path, settings, mix, forced
):
    """One pack holds three files and a tiny one; a kept version on main reaches
    some of them, the expired experiment all. Whether the planner chose to repack
    the pack or the run is made to, the kept version reads back whole, and the
    pack's dead chunks are gone from the index."""
    default_policies()
    settings.STRATA_RETENTION_APPROVAL_BYTES = 10**12
    settings.STRATA_PACK_SIZE = 10 * 1024 * 1024  # one pack per push
    base = tmp_path / "base"
    write_random(base / "base.bin", 2_000, 99)
    first = version_push(path=str(base), dataset_name="reviews", author="alice", branch="main").version
    from catalog.services.refs import branch_create

    branch_create(dataset=first.dataset, name="exp/x", start=first, actor="alice")
    mixed = tmp_path / "mixed"
    names = [f"f{index}.bin" for index in range(3)] + ["tiny.txt"]
    for index in range(3):
        write_random(mixed / names[index], 30_000 + 7_000 * index, 10 + index)
    (mixed / "tiny.txt").write_bytes(b"hello")
    gone = version_push(path=str(mixed), dataset_name="reviews", author="alice", branch="exp/x").version
    pack_id = pack_of(gone, "tiny.txt")
    assert {pack_of(gone, name) for name in names} == {pack_id}

    kept_folder = tmp_path / "kept"
    write_random(kept_folder / "base.bin", 2_000, 99)
    for index in MIXES[mix]:
        (kept_folder / names[index]).write_bytes((mixed / names[index]).read_bytes())
    kept = version_push(path=str(kept_folder), dataset_name="reviews", author="alice", branch="main").version
    Version.objects.filter(pk=first.pk).update(created=day(0))
    Version.objects.filter(pk=gone.pk).update(created=day(1))
    Version.objects.filter(pk=kept.pk).update(created=day(40))
    Pack.objects.update(created=day(0), tier_since=day(0))
    live_chunks = {chunk_id for index in MIXES[mix] for chunk_id in _chunks_of(kept, names[index])}

    run = retention_plan(now=day(40))
    if forced:
        RetentionRun.objects.filter(pk=run.pk).update(
            actions={**run.actions, "repack": [pack_id], "delete": []}
        )
    elif MIXES[mix] == set(range(4)):
        assert run.actions["repack"] == []  # nothing to gain
    run = retention_advance(run_id=run.pk)
    assert run.state == RetentionRun.State.DONE, run.error

    _assert_reads_back(kept, kept_folder, tmp_path / "out")
    dead_chunks = {chunk_id for name in names for chunk_id in _chunks_of(gone, name)} - live_chunks
    if forced or pack_id in run.actions["repack"] or not live_chunks:
        assert not Chunk.objects.filter(id__in=dead_chunks).exists()  # the space is freed
    if MIXES[mix] == set(range(4)):
        assert Pack.objects.filter(pk=pack_id).exists()  # the same pack, whole
    # Running the repacking phase again, as after a crash, changes nothing.
    RetentionRun.objects.filter(pk=run.pk).update(state=RetentionRun.State.APPLYING, phase="repacking")
    assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE
    _assert_reads_back(kept, kept_folder, tmp_path / "again")


def _chunks_of(version: Version, name: str) -> list[str]:
    from catalog.store import file_chunks, walk_tree

    entry = next(item.entry for item in walk_tree(version.tree_id) if item.path == name)
    return file_chunks([entry.digest])[entry.digest]
