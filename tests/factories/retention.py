"""Retention on a simulated clock, and the cost scenario worked out by hand.

Pushes happen now; their rows are then dated on a simulated calendar (day 0 is
T0) and every plan is made with `now=` a day of that calendar, so 400 days pass
in seconds without patching time anywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from catalog.models import Pack, Version
from catalog.services.refs import branch_create
from catalog.services.versions import version_push
from catalog.store import DatabaseChunkIndex, file_chunks, get_backend, walk_tree
from lifecycle.models import RetentionPolicy, RetentionRun
from lifecycle.services.retention import retention_advance, retention_plan
from tests.factories.files import write_random

if TYPE_CHECKING:
    from pytest_django.fixtures import SettingsWrapper

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TB = 2**40


def day(number: float) -> datetime:
    return T0 + timedelta(days=number)


def default_policies() -> None:
    """The defaults the data migration makes; a transactional test earlier in the
    session may have emptied the table."""
    RetentionPolicy.objects.get_or_create(
        pattern="main",
        defaults={"position": 10, "keep_forever": True, "warm_after_days": 30, "cold_after_days": 180},
    )
    RetentionPolicy.objects.get_or_create(pattern="exp/*", defaults={"position": 20, "expire_after_days": 30})


class Calendar:
    """Push folders as versions and date them on the simulated calendar."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders: dict[tuple[str, str], Path] = {}

    def push(self, branch: str, on: float, files: dict[str, int], dataset: str = "reviews") -> Version:
        folder = self.folders.setdefault((dataset, branch), self.root / dataset / branch.replace("/", "_"))
        folder.mkdir(parents=True, exist_ok=True)
        for existing in folder.iterdir():
            if existing.name not in files:
                existing.unlink()
        for name, seed in files.items():
            if not (folder / name).exists():
                write_random(folder / name, 20_000, seed)
        before = set(Pack.objects.values_list("id", flat=True))
        version = version_push(path=str(folder), dataset_name=dataset, author="alice", branch=branch).version
        Version.objects.filter(pk=version.pk).update(created=day(on))
        Pack.objects.exclude(id__in=before).update(created=day(on), tier_since=day(on))
        version.refresh_from_db()
        return version

    def branch(self, dataset: str, name: str, start: Version) -> None:
        branch_create(dataset=start.dataset, name=name, start=start, actor="alice")


def run_retention(on: float) -> RetentionRun:
    run = retention_plan(now=day(on))
    if run.state == RetentionRun.State.AWAITING:
        return run
    return retention_advance(run_id=run.pk)


def pack_of(version: Version, name: str) -> str:
    """The pack holding the first chunk of the file `name` of `version`."""
    entry = next(item.entry for item in walk_tree(version.tree_id) if item.path == name)
    chunk_id = file_chunks([entry.digest])[entry.digest][0]
    return DatabaseChunkIndex().locate([chunk_id])[chunk_id].pack_id


def tier(pack_id: str) -> str | None:
    pack = Pack.objects.filter(pk=pack_id).first()
    return pack.tier if pack else None


def cost_scenario_make(*, tmp_path: Path, settings: SettingsWrapper) -> dict[str, Any]:
    """The cost scenario worked out by hand (prices $23, $12.50 and $4 per
    TB-month; a TB is 2^40 bytes), on a local store:

    - reviews@main: v1 (25 days ago, a.bin) and v2 (5 days ago, a.bin + b.bin).
      a.bin's pack is 1 TB hot: $23.00. b.bin's pack is 0.5 TB warm since v2: $6.25.
    - archive@main: one version 225 days ago; its pack is 3 TB cold for 125 days:
      $12.00, plus 40 KiB of Glacier metadata per object (32 KiB at the cold price,
      8 KiB at the hot), which is $0.0000003: $0.00 after rounding.
    - Total $41.25 a month; minimum-size charges $0.00.
    - Policies (defaults): v2 was used 5 days ago, so b.bin's pack must come back to
      hot; it has been warm 5 of its 30 minimum days: 25/30 of $6.25 = $5.21 due.
    - In 30 days (v1 idle 55, v2 idle 35 days): both reviews packs warm, 1.5 TB at
      $12.50 = $18.75, the archive stays cold $12.00: $30.75. In 90 days: the same.
    """
    default_policies()
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    settings.STRATA_LOCAL_RESTORE_SECONDS = 4 * 3600
    now = timezone.now()

    def push(dataset: str, files: dict[str, int], days_ago: int) -> Version:
        folder = tmp_path / dataset
        for name, seed in files.items():
            write_random(folder / name, 20_000, seed)
        version = version_push(path=str(folder), dataset_name=dataset, author="alice").version
        Version.objects.filter(pk=version.pk).update(created=now - timedelta(days=days_ago))
        return version

    v1 = push("reviews", {"a.bin": 1}, 25)
    v2 = push("reviews", {"a.bin": 1, "b.bin": 2}, 5)
    old = push("archive", {"c.bin": 3}, 225)
    pack_a, pack_b, pack_c = pack_of(v1, "a.bin"), pack_of(v2, "b.bin"), pack_of(old, "c.bin")
    Pack.objects.filter(pk=pack_a).update(size=TB, tier="hot", created=now - timedelta(days=25))
    Pack.objects.filter(pk=pack_b).update(
        size=TB // 2, tier="warm", created=now - timedelta(days=5), tier_since=now - timedelta(days=5)
    )
    Pack.objects.filter(pk=pack_c).update(
        size=3 * TB, tier="cold", created=now - timedelta(days=225), tier_since=now - timedelta(days=125)
    )
    get_backend().set_tier(pack_c, "cold")
    return {"now": now, "v1": v1, "v2": v2, "old": old}
