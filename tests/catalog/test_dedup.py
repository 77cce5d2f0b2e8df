"""Editing a little of a large file stores only a little."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest


def _jsonl_lines(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    words = ["data", "model", "label", "review", "great", "poor", "fast", "slow", "value", "price"]
    return [
        json.dumps(
            {
                "id": index,
                "text": " ".join(rng.choice(words) for _ in range(rng.randint(10, 40))),
                "label": rng.choice(["pos", "neg"]),
                "score": rng.random(),
            }
        ).encode()
        + b"\n"
        for index in range(count)
    ]


@pytest.fixture(scope="session")
def jsonl_pair(tmp_path_factory) -> tuple[Path, Path, int]:
    """A ~200 MB JSONL file, and an edit of it: 0.1% of the lines changed in one
    contiguous block in the middle, and 1% more lines appended."""
    folder = tmp_path_factory.mktemp("jsonl")
    lines = _jsonl_lines(1_000_000, seed=11)
    original = folder / "v1" / "reviews.jsonl"
    original.parent.mkdir()
    original.write_bytes(b"".join(lines))
    size = original.stat().st_size
    middle, block = len(lines) // 2, len(lines) // 1000
    edited = list(lines)
    for index in range(middle, middle + block):
        edited[index] = (
            edited[index].replace(b'"label": "pos"', b'"label": "neg"').replace(b"great", b"GREAT")
        )
    edited += _jsonl_lines(len(lines) // 100, seed=12)
    changed = folder / "v2" / "reviews.jsonl"
    changed.parent.mkdir()
    changed.write_bytes(b"".join(edited))
    return original, changed, size


@pytest.mark.slow
def test_small_edit_to_large_jsonl_stores_under_three_percent(strata, jsonl_pair):
    original, changed, size = jsonl_pair
    assert size > 190_000_000
    first = json.loads(strata("push", str(original), "reviews", "--json"))
    assert first["new_bytes"] == size
    second = json.loads(strata("push", str(changed), "reviews", "--json"))
    assert second["created"]
    assert second["new_bytes"] < 0.03 * size, second
    assert second["reused_bytes"] + second["new_bytes"] == changed.stat().st_size
    text = strata("push", str(original), "reviews")
    assert "new" in text and "reused" in text
