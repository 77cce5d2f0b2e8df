"""Fill a database with a catalog at scale: 10,000 datasets and 100,000 versions.

    createdb -h 127.0.0.1 -U postgres strata_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/strata_bench .venv/bin/python bench/seed_scale.py

The rows are made directly with bulk inserts (the services would push real bytes,
which is not what the page benchmark measures): datasets with descriptions, owners,
keywords and groups (a tenth of them restricted), ten versions each on a first-parent
chain, a main branch on the last, experiment branches and tags on some, golden and
rolled-back versions here and there. Versions share a few dozen real trees, so the
version page lists real folders. Users: `bench-viewer` (a viewer in two teams) and
`bench-admin`, both with the password `bench-password`.

It migrates the database first; `--reset` empties the catalog tables before seeding.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from catalog.models import Branch, Dataset, Keyword, Stage, Tag, Tree, Version  # noqa: E402
from catalog.store import tree_row  # noqa: E402
from strata_store import tree as treeformat  # noqa: E402
from strata_store.hashing import digest_hex  # noqa: E402

PASSWORD = "bench-password"
WORDS = [
    "reviews",
    "images",
    "speech",
    "clicks",
    "sensors",
    "weather",
    "traffic",
    "medical",
    "invoices",
    "receipts",
    "chat",
    "code",
    "satellite",
    "street",
    "signs",
    "faces",
    "birds",
    "products",
    "news",
    "tweets",
    "transcripts",
    "genomes",
    "molecules",
    "claims",
    "orders",
    "fraud",
    "churn",
    "retail",
    "search",
    "queries",
    "labels",
    "embeddings",
    "captions",
    "audio",
    "video",
]
STAGES = [Stage.RAW, Stage.CLEANED, Stage.LABELLED, Stage.SPLIT]
BATCH = 5000


def _trees(rng: random.Random, count: int) -> list[tuple[str, int, int]]:
    """`count` distinct real trees: (root id, file count, logical bytes)."""
    rows: dict[str, Tree] = {}
    roots = []
    for index in range(count):
        folders = {}
        total_files = total_bytes = 0
        for folder in ("train", "test", "validation", "meta"):
            entries = []
            for part in range(rng.randint(3, 40)):
                size = rng.randint(1_000, 50_000_000)
                digest = digest_hex(f"{index}/{folder}/{part}".encode())
                entries.append(treeformat.Entry(f"part-{part:05d}.parquet", treeformat.FILE, size, digest))
            data = treeformat.encode(entries)
            row = tree_row(data, len(entries))
            rows[row.id] = row
            size = sum(entry.size for entry in entries)
            folders[folder] = (row.id, size)
            total_files += len(entries)
            total_bytes += size
        readme = treeformat.Entry("README.md", treeformat.FILE, 2048, digest_hex(f"readme {index}".encode()))
        root_entries = [readme] + [
            treeformat.Entry(name, treeformat.TREE, size, tree_id)
            for name, (tree_id, size) in folders.items()
        ]
        data = treeformat.encode(root_entries)
        row = tree_row(data, len(root_entries))
        rows[row.id] = row
        roots.append((row.id, total_files + 1, total_bytes + 2048))
    Tree.objects.bulk_create(rows.values(), ignore_conflicts=True)
    return roots


def _reset() -> None:
    tables = [
        model._meta.db_table
        for model in (Tag, Branch, Version, Dataset.owners.through, Dataset.groups.through)
    ]
    tables += [Dataset.keywords.through._meta.db_table, Dataset._meta.db_table, Keyword._meta.db_table]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
    User.objects.filter(username__startswith="bench-").delete()
    User.objects.filter(username__startswith="owner-").delete()
    Group.objects.filter(name__startswith="team-").delete()


def seed(datasets: int, versions_per_dataset: int, seed_value: int) -> None:
    rng = random.Random(seed_value)
    started = time.monotonic()
    now = timezone.now()
    with transaction.atomic():
        roles = {name: Group.objects.get_or_create(name=name)[0] for name in ("viewer", "admin")}
        teams = Group.objects.bulk_create([Group(name=f"team-{i:02d}") for i in range(20)])
        password = make_password(PASSWORD)
        owners = User.objects.bulk_create(
            [User(username=f"owner-{i:03d}", password=password) for i in range(60)]
        )
        viewer = User.objects.create(username="bench-viewer", password=password)
        viewer.groups.add(roles["viewer"], teams[0], teams[1])
        admin = User.objects.create(username="bench-admin", password=password)
        admin.groups.add(roles["admin"])
        keywords = Keyword.objects.bulk_create(
            [Keyword(name=f"{word}-{i}") for i in range(5) for word in WORDS]
        )
        roots = _trees(rng, 40)

        dataset_rows = []
        for index in range(datasets):
            words = rng.sample(WORDS, 3)
            dataset_rows.append(
                Dataset(
                    name=f"scale-{index:05d}-{words[0]}",
                    description=f"{words[0].title()} {words[1]} for {words[2]} models, batch {index}.",
                    visibility=Dataset.Visibility.RESTRICTED
                    if index % 10 == 0
                    else Dataset.Visibility.PUBLIC,
                    created=now - timedelta(days=800),
                    updated=now - timedelta(minutes=rng.randint(0, 700 * 24 * 60)),
                )
            )
        made = Dataset.objects.bulk_create(dataset_rows, batch_size=BATCH)
        owner_links, keyword_links, group_links = [], [], []
        for dataset in made:
            for owner in rng.sample(owners, rng.randint(1, 2)):
                owner_links.append(Dataset.owners.through(dataset_id=dataset.pk, user_id=owner.pk))
            for keyword in rng.sample(keywords, rng.randint(2, 4)):
                keyword_links.append(Dataset.keywords.through(dataset_id=dataset.pk, keyword_id=keyword.pk))
            if dataset.visibility == Dataset.Visibility.RESTRICTED:
                group_links.append(
                    Dataset.groups.through(dataset_id=dataset.pk, group_id=rng.choice(teams).pk)
                )
        Dataset.owners.through.objects.bulk_create(owner_links, batch_size=BATCH)
        Dataset.keywords.through.objects.bulk_create(keyword_links, batch_size=BATCH)
        Dataset.groups.through.objects.bulk_create(group_links, batch_size=BATCH)
        print(
            f"{len(made):,} datasets with owners, keywords and groups in {time.monotonic() - started:.1f} s"
        )

        version_rows, branch_rows, tag_rows = [], [], []
        for dataset in made:
            parent_id = None
            created = dataset.updated - timedelta(days=versions_per_dataset * 3)
            chain = []
            for minor in range(versions_per_dataset):
                tree_id, file_count, logical = rng.choice(roots)
                created += timedelta(days=3)
                version_id = digest_hex(f"{dataset.name}@1.{minor}.0".encode())
                version_rows.append(
                    Version(
                        id=version_id,
                        dataset_id=dataset.pk,
                        parent_id=parent_id,
                        tree_id=tree_id,
                        author=rng.choice(owners).username,
                        message=f"{rng.choice(['Add', 'Clean', 'Relabel', 'Split', 'Dedup'])} {rng.choice(WORDS)}",
                        created=created,
                        semver=f"1.{minor}.0",
                        semver_major=1,
                        semver_minor=minor,
                        semver_patch=0,
                        stage=STAGES[min(minor * len(STAGES) // versions_per_dataset, len(STAGES) - 1)],
                        file_count=file_count,
                        logical_bytes=logical,
                        new_bytes=logical // 10,
                        stored_bytes=logical // 12,
                        golden=rng.random() < 0.01,
                        rolled_back=rng.random() < 0.005,
                    )
                )
                chain.append(version_id)
                parent_id = version_id
            branch_rows.append(
                Branch(dataset_id=dataset.pk, name="main", head_id=chain[-1], created=now, updated=now)
            )
            if rng.random() < 0.2:
                middle = chain[len(chain) // 2]
                branch_rows.append(
                    Branch(dataset_id=dataset.pk, name="exp/filter", head_id=middle, created=now, updated=now)
                )
            if rng.random() < 0.3:
                tag_rows.append(
                    Tag(dataset_id=dataset.pk, name="v1", version_id=chain[0], created_by="bench")
                )
        Version.objects.bulk_create(version_rows, batch_size=BATCH)
        Branch.objects.bulk_create(branch_rows, batch_size=BATCH)
        Tag.objects.bulk_create(tag_rows, batch_size=BATCH)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(
        f"{len(version_rows):,} versions, {len(branch_rows):,} branches, {len(tag_rows):,} tags;"
        f" done in {time.monotonic() - started:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--versions-per-dataset", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reset", action="store_true", help="empty the catalog tables first")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if args.reset:
        _reset()
    elif Dataset.objects.exists():
        print(f"{Dataset.objects.count():,} datasets are there already: pass --reset to seed again.")
        return
    seed(args.datasets, args.versions_per_dataset, args.seed)


if __name__ == "__main__":
    main()
