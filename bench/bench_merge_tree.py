"""Three-way merge of a 10,000-file tree with 1% of the files changed on each side.

    .venv/bin/python bench/bench_merge_tree.py [--files 10000] [--repeat 3]

Pushes a folder of `--files` small files (100 per folder) into a fresh SQLite
catalog and local store; then for each repetition branches from main, changes 1%
of the files on main and a different 1% on the branch (both pushed, not timed),
and times `merge_branches` — the merge base, the walk of the three trees, the
edit of the target's tree, the classification of the change and the commit of
the two-parent version — end to end, as `strata merge` runs it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    (PROJECT / "bench" / "data").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="strata-bench-merge-", dir=PROJECT / "bench" / "data"))
    os.environ.update(
        STRATA_VAR_DIR=str(work / "var"), DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING"
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(PROJECT))
    subprocess.run([sys.executable, str(PROJECT / "manage.py"), "migrate", "-v0"], check=True)
    import django

    django.setup()
    from catalog.models import Branch
    from catalog.services.merges import merge_branches
    from catalog.services.refs import branch_create
    from catalog.services.versions import version_push

    data = work / "data"
    paths = []
    for index in range(args.files):
        folder = data / f"{index // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:05d}.txt"
        path.write_bytes(os.urandom(1024))
        paths.append(path)
    version_push(path=str(data), dataset_name="bench", author="bench", message="base")
    step = 100  # 1% of the files on each side
    timings, changed = [], 0
    for round_number in range(args.repeat):
        head = Branch.objects.get(dataset__name="bench", name="main").head
        branch = f"exp-{round_number}"
        branch_create(dataset=head.dataset, name=branch, start=head, actor="bench")
        mine = paths[round_number % step :: step]
        theirs = paths[(round_number + step // 2) % step :: step]
        for path in mine:
            path.write_bytes(os.urandom(1024))
        version_push(path=str(data), dataset_name="bench", author="bench", message="main side")
        saved = {path: path.read_bytes() for path in mine}
        for path in mine:  # the branch starts from the head before main's change
            path.write_bytes(b"")
        for path in theirs:
            path.write_bytes(os.urandom(1024))
        _restore_base(head, mine)
        version_push(
            path=str(data), dataset_name="bench", branch=branch, author="bench", message="branch side"
        )
        for path, content in saved.items():
            path.write_bytes(content)
        start = time.perf_counter()
        outcome = merge_branches(user=None, dataset_name="bench", source=branch, author="bench")
        timings.append(time.perf_counter() - start)
        assert outcome.version is not None and outcome.conflict_count == 0
        changed = len(outcome.plan.files.changes)
        _pull_check(outcome.version, data)
    print(f"files: {args.files:,}; changed per side: {len(mine)}; taken from the branch: {changed}")
    print(
        f"merge, end to end: median {statistics.median(timings):.3f} s; runs "
        + ", ".join(f"{t:.3f}" for t in timings)
    )


def _restore_base(head, paths) -> None:
    """Write back, for `paths`, the content `head` holds (the branch's starting point)."""
    from catalog.selectors.exports import file_stream

    root = str(paths[0].parent.parent)
    for path in paths:
        relpath = os.path.relpath(path, root)
        path.write_bytes(b"".join(file_stream(head, relpath).chunks))


def _pull_check(version, data: Path) -> None:
    """The merged version holds exactly the folder as it now is (both sides' changes)."""
    from catalog.store import walk_tree
    from strata_store.hashing import digest_hex

    stored = {item.path: item.entry.digest for item in walk_tree(version.tree_id) if item.entry.is_file}
    for path, digest in stored.items():
        assert digest_hex((data / path).read_bytes()) == digest, path


if __name__ == "__main__":
    main()
