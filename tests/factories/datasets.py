"""Datasets and versions for the tests, pushed through the real services: a
folder of given files, the two versions of 'reviews' the pages show, and many
datasets made directly as rows, to measure a page with many."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

from catalog.models import Dataset, Version
from catalog.services.datasets import dataset_update
from catalog.services.versions import version_push

_counter = itertools.count()


def push(tmp_path: Path, dataset: str, files: dict[str, bytes | str], user=None, **options) -> Version:
    """Push a folder holding exactly `files` as a new version of `dataset`."""
    folder = tmp_path / f"src-{dataset}-{next(_counter)}"
    folder.mkdir(parents=True)
    for relpath, content in files.items():
        target = folder / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content)
        else:
            target.write_bytes(content)
    result = version_push(path=str(folder), dataset_name=dataset, user=user, author="alice", **options)
    return result.version


def parquet_bytes() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": [1, 2, 3], "label": ["cat", "dog", "cat"], "score": [0.5, 0.25, 0.75]})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def png_bytes() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 40), (45, 106, 136))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


REVIEWS_V1 = {
    "README.md": "# Reviews\n\nProduct reviews with a sentiment label.\n",
    "train/part-0.csv": "id,text,label\n1,great phone,positive\n2,broke in a week,negative\n3,fine,neutral\n",
    "train/part-1.csv": "id,text,label\n4,love it,positive\n",
    "test/part-0.csv": "id,text,label\n5,meh,neutral\n",
    "notes.txt": "Collected in March from the public product pages.\n",
    "meta/labels.jsonl": "\n".join(json.dumps({"label": name, "id": i}) for i, name in enumerate("abc"))
    + "\n",
}


def reviews(tmp_path: Path, personas) -> tuple[Dataset, Version, Version]:
    """'reviews', owned by alice: 1.0.0, then 1.1.0 with one table changed (rows
    added, same columns), a Parquet file and an image added and a text file
    removed: a minor change, whatever else the version-numbering rules weigh."""
    alice = personas["alice"]
    first = push(tmp_path, "reviews", REVIEWS_V1, user=alice, message="First cut", stage="raw")
    second_files = dict(REVIEWS_V1)
    second_files["train/part-1.csv"] = "id,text,label\n4,love it,positive\n6,too loud,negative\n"
    del second_files["notes.txt"]
    second_files["features.parquet"] = parquet_bytes()
    second_files["images/cat.png"] = png_bytes()
    second = push(tmp_path, "reviews", second_files, user=alice, message="Clean labels", stage="cleaned")
    dataset = Dataset.objects.get(name="reviews")
    dataset_update(
        user=alice,
        dataset=dataset,
        description="Product reviews, labelled by sentiment.",
        keywords=["nlp", "reviews"],
    )
    return dataset, first, second


def clone_datasets(template: Version, count: int, prefix: str = "bulk", versions: int = 1) -> list[Dataset]:
    """`count` more datasets whose versions share `template`'s tree: rows made
    directly, as bench/seed_scale.py does, so a page can be measured with many."""
    from django.utils import timezone

    from catalog.models import Branch, Keyword

    keyword, _ = Keyword.objects.get_or_create(name="bulk")
    made = []
    for index in range(count):
        dataset = Dataset.objects.create(name=f"{prefix}-{index:04d}", description=f"Bulk dataset {index}")
        dataset.keywords.add(keyword)
        parent = None
        for minor in range(versions):
            parent = Version.objects.create(
                id=f"{prefix}{index:04d}{minor:04d}".ljust(64, "0"),
                dataset=dataset,
                parent=parent,
                tree_id=template.tree_id,
                author="alice",
                message=f"version {minor}",
                created=timezone.now(),
                semver=f"1.{minor}.0",
                semver_major=1,
                semver_minor=minor,
                semver_patch=0,
                stage="cleaned" if index % 2 else "raw",
                file_count=template.file_count,
                logical_bytes=template.logical_bytes + index,
            )
        Branch.objects.create(dataset=dataset, name="main", head=parent)
        made.append(dataset)
    return made
