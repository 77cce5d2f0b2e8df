"""The benchmark's data sets, generated from fixed seeds.

Every byte is a pure function of the seeds below, so two runs (or two machines)
measure the same data. Random bytes are incompressible and never repeat, which is
the worst case for a deduplicating, compressing store: nothing is won by content,
only by the work a tool does or avoids. The JSONL file is the opposite case, a
text file whose small edits a content-defined chunker should store cheaply.

A set is written to a temporary folder and renamed into place when whole, so an
interrupted generation is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

SMALL_FILES = 20_000
SMALL_FOLDERS = 20
SMALL_SIZE = 4 * KIB  # each file is 4 KiB give or take 512 bytes

LARGE_FILES = 4
LARGE_SIZE = 256 * MIB

JSONL_LINES = 1_000_000
JSONL_NAME = "data.jsonl"
EDITED_FRACTION = 0.001  # 0.1% of the lines are edited
APPENDED_FRACTION = 0.01  # the block edit also appends 1% more lines
LABELS = ("cat", "dog", "bird", "fish", "horse", "other")
VOCABULARY_SIZE = 5_000

_WRITE_BLOCK = 16 * MIB


def ensure(path: Path, make: Callable[[Path], None]) -> Path:
    """Generate a set at `path` unless a finished one is already there."""
    if path.exists():
        return path
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    make(partial)
    partial.rename(path)
    return path


# -- random files -----------------------------------------------------------------------


def make_small(folder: Path, seed: int = 1) -> None:
    """20,000 files of about 4 KiB in 20 folders: the many-small-files case
    (images, audio clips, shards of a labelled corpus)."""
    rng = random.Random(seed)
    for index in range(SMALL_FILES):
        subfolder = folder / f"part-{index % SMALL_FOLDERS:02d}"
        subfolder.mkdir(exist_ok=True)
        size = SMALL_SIZE + rng.randint(-512, 512)
        (subfolder / f"item-{index:05d}.bin").write_bytes(rng.randbytes(size))


def make_large(folder: Path, seed: int = 2) -> None:
    """Four files of 256 MiB: the few-big-files case (model weights, archives).
    Written in blocks so the generator's memory stays small."""
    rng = random.Random(seed)
    for index in range(LARGE_FILES):
        with open(folder / f"blob-{index}.bin", "wb") as handle:
            for _ in range(LARGE_SIZE // _WRITE_BLOCK):
                handle.write(rng.randbytes(_WRITE_BLOCK))


# -- JSONL ------------------------------------------------------------------------------


def _vocabulary(seed: int) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(VOCABULARY_SIZE)]


def _record(rng: random.Random, words: list[str], line_id: int) -> str:
    """One line of about 200 bytes, the shape of a labelled text corpus."""
    text = " ".join(rng.choices(words, k=rng.randint(13, 28)))
    record = {
        "id": line_id,
        "text": text,
        "label": rng.choice(LABELS),
        "score": round(rng.random(), 6),
    }
    return json.dumps(record) + "\n"


def _write_lines(path: Path, lines: Iterator[str]) -> None:
    with open(path, "w", encoding="utf-8", buffering=_WRITE_BLOCK) as handle:
        handle.writelines(lines)


def make_jsonl(folder: Path, seed: int = 3) -> None:
    """About 200 MB of JSON lines: version 1 of the edited-text case."""
    words = _vocabulary(seed)
    rng = random.Random(seed)
    _write_lines(folder / JSONL_NAME, (_record(rng, words, line_id) for line_id in range(JSONL_LINES)))


def _edited(source: Path, edited_ids: set[int], seed: int) -> Iterator[str]:
    """The lines of `source`, with those in `edited_ids` rewritten (new text and
    label under the same id, as a cleaning or relabelling pass would)."""
    words = _vocabulary(seed)
    rng = random.Random(seed + 1000)
    with open(source, encoding="utf-8") as handle:
        for line_id, line in enumerate(handle):
            yield _record(rng, words, line_id) if line_id in edited_ids else line


def make_jsonl_block(folder: Path, source: Path, seed: int = 4) -> None:
    """Version 1 with 0.1% of the lines edited in one run in the middle, and 1%
    more lines appended: a fix to one region plus new data."""
    edited_count = int(JSONL_LINES * EDITED_FRACTION)
    first = JSONL_LINES // 2 - edited_count // 2
    edited_ids = set(range(first, first + edited_count))
    appended_rng = random.Random(seed + 2000)
    words = _vocabulary(seed)
    appended = (
        _record(appended_rng, words, line_id)
        for line_id in range(JSONL_LINES, JSONL_LINES + int(JSONL_LINES * APPENDED_FRACTION))
    )

    def lines() -> Iterator[str]:
        yield from _edited(source / JSONL_NAME, edited_ids, seed)
        yield from appended

    _write_lines(folder / JSONL_NAME, lines())


def make_jsonl_scattered(folder: Path, source: Path, seed: int = 5) -> None:
    """Version 1 with 0.1% of the lines edited, spread uniformly through the file:
    the hardest case for chunk-level dedup, as each edit dirties its own chunk."""
    edited_ids = set(random.Random(seed).sample(range(JSONL_LINES), int(JSONL_LINES * EDITED_FRACTION)))
    _write_lines(folder / JSONL_NAME, _edited(source / JSONL_NAME, edited_ids, seed))


def tree_bytes(path: Path) -> int:
    """Apparent size of every file below `path` (what `du --apparent-size` says)."""
    total = 0
    for directory, _, files in os.walk(path):
        total += sum(os.lstat(os.path.join(directory, name)).st_size for name in files)
    return total
