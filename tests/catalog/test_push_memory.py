"""A push's memory follows its packs, not its file count.

Chunks are handed along as views into the buffer they were read into, so a
chunk keeps its buffer alive until its pack is written. A buffer must therefore
be no larger than what was read: when each small file's chunks pinned a whole
8 MiB read window, pushing 20,000 files of 4 KiB was killed for want of memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.factories.files import ROOT
from tests.workers import database_url

# Runs the push as its only child and reports the child's peak resident size.
MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "stderr": done.stderr,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def test_pushing_thousands_of_small_files_holds_little_memory(
    transactional_db, store_url, tmp_path, settings
):
    source = tmp_path / "many"
    for index in range(1000):
        folder = source / f"part-{index % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"item-{index:05d}.bin").write_bytes(os.urandom(4096))
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        STORAGE_URL=store_url,
        STRATA_CACHE_DIR=str(settings.STRATA_CACHE_DIR),
        STRATA_VAR_DIR=str(tmp_path / "var"),
        STRATA_USER="alice",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )
    push = [sys.executable, str(ROOT / "manage.py"), "strata", "push", str(source), "many", "--json"]
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, *push], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    result = json.loads(measured.stdout)
    assert result["code"] == 0, result["stderr"]
    # 4 MiB of data in one pack; the process itself takes about 60-100 MiB.
    # Pinning an 8 MiB window per file would take 8 GiB.
    assert result["peak_kib"] < 300 * 1024, f"peak {result['peak_kib'] // 1024} MiB"
