"""Invariants 2 and 4: a killed push leaves no version; damaged bytes are named,
never served."""

from __future__ import annotations

import os
import signal
import time

import pytest

from catalog.models import Chunk, Dataset, Pack, Version
from catalog.store import get_backend
from tests.factories.files import write_random
from tests.factories.store import flip_pack_byte


def _unreferenced(verify_output: str) -> set[str]:
    return {line.split()[1] for line in verify_output.splitlines() if line.startswith("  unreferenced ")}


@pytest.mark.slow
def test_push_killed_half_way_leaves_no_version_and_the_next_push_succeeds(cli, tmp_path, settings):
    settings.STRATA_PACK_SIZE = 4 * 1024 * 1024
    cli.env["STRATA_PACK_SIZE"] = str(settings.STRATA_PACK_SIZE)
    source = tmp_path / "data"
    for index in range(6):
        write_random(source / f"part-{index}.bin", 48 * 1024 * 1024, seed=index)
    process = cli.popen("push", str(source), "crashy", "-m", "will be killed")
    backend = get_backend()
    deadline = time.monotonic() + 120
    while len(list(backend.list_packs())) < 3:
        assert process.poll() is None, "push finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert not Dataset.objects.filter(name="crashy").exists()
    assert Version.objects.count() == 0 and Pack.objects.count() == 0

    after_crash = cli("verify", check=True)
    orphans = _unreferenced(after_crash.stdout)
    assert len(orphans) >= 3
    assert orphans == {pack_id for pack_id, _ in backend.list_packs()}

    # The user adds a file and pushes again. Packs are cut deterministically, so
    # the retry may store some packs byte-identical to orphans (and adopt them);
    # every other orphan must still be listed.
    write_random(source / "aaa-readme.bin", 300 * 1024, seed=99)
    pushed = cli("push", str(source), "crashy", "-m", "second try", check=True)
    assert "Pushed crashy@1.0.0" in pushed.stdout

    verified = cli("verify", check=True)
    assert "OK: every reachable byte verified." in verified.stdout
    listed = _unreferenced(verified.stdout)
    referenced = set(Pack.objects.values_list("id", flat=True))
    assert listed and listed == orphans - referenced

    out = tmp_path / "out"
    cli("pull", "crashy", str(out), check=True)
    for index in range(6):
        assert (out / f"part-{index}.bin").read_bytes() == (source / f"part-{index}.bin").read_bytes()


def test_a_flipped_byte_is_named_by_verify_and_refused_by_pull(cli, tmp_path):
    source = tmp_path / "data"
    write_random(source / "a.bin", 3 * 1024 * 1024, seed=1)
    (source / "notes.txt").write_text("fine\n" * 1000)
    cli("push", str(source), "fragile", check=True)
    assert cli("verify", "fragile").returncode == 0

    victim = Chunk.objects.filter(raw_length__gt=10_000).order_by("offset").first()
    flip_pack_byte(victim.pack_id, victim.offset + victim.stored_length // 2)

    verified = cli("verify")
    assert verified.returncode == 1
    assert f"chunk {victim.id} is corrupt" in verified.stdout
    assert victim.pack_id in verified.stdout
    assert "fragile@1.0.0/a.bin" in verified.stdout
    assert "broken" in verified.stderr

    dest = tmp_path / "restored"
    pulled = cli("pull", "fragile", str(dest))
    assert pulled.returncode == 1
    assert victim.id in pulled.stderr and "nothing was written" in pulled.stderr
    assert not dest.exists()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".strata-pull")]

    dest.mkdir()
    assert cli("pull", "fragile", str(dest)).returncode == 1
    assert os.listdir(dest) == []
