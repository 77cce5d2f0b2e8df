"""Files for the tests: the repository root, random files, a folder's digests."""

from __future__ import annotations

import os
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_random(path: Path, size: int, seed: int) -> None:
    """Write `size` pseudo-random (incompressible) bytes, reproducibly."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            block = min(remaining, 8 << 20)
            handle.write(rng.randbytes(block))
            remaining -= block


def tree_digests(root: Path) -> dict[str, tuple[str, str]]:
    """Every file, link and folder below `root`, with a hash of its content."""
    from blake3 import blake3

    result: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                result[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                result[rel] = ("dir", "")
            else:
                hasher = blake3()
                with open(full, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        hasher.update(block)
                mode = "x" if os.access(full, os.X_OK) else "f"
                result[rel] = (mode, hasher.hexdigest())
    return result
