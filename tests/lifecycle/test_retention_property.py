"""The safety property of retention, against the real store and database: whatever
the history and the policies, applying a plan never deletes a byte that a kept or
protected version reaches — every surviving version verifies.

Each Hypothesis example runs in a savepoint that is rolled back, with a store and
a cache folder of its own, so examples never see one another's rows or packs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import Branch, Pack, Tag, Version
from catalog.services.refs import branch_create
from catalog.services.verify import store_verify
from catalog.services.versions import version_push
from catalog.store import get_backend
from changes.models import BranchProtection
from lifecycle.models import RetentionPolicy, RetentionRun
from lifecycle.services.retention import retention_advance, retention_plan
from tests.factories.files import write_random

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BRANCHES = ("main", "exp/a", "exp/a", "exp/b", "exp/b", "dev")  # experiments come and go most

push_step = st.tuples(
    st.sampled_from(BRANCHES),
    st.integers(min_value=0, max_value=120),  # days after the previous push
    st.sets(st.integers(min_value=0, max_value=11), min_size=1, max_size=4),  # file seeds
    st.sampled_from(["", "golden", "tag", "pinned"]),
)
main_policy = st.tuples(
    st.booleans(),  # keep forever
    st.one_of(st.none(), st.integers(min_value=0, max_value=90)),  # expire after
    st.one_of(st.none(), st.integers(min_value=0, max_value=60)),  # warm after
    st.one_of(st.none(), st.integers(min_value=0, max_value=200)),  # cold after
)
experiment_policy = st.tuples(
    st.just(False),
    st.integers(min_value=0, max_value=60),
    st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(push_step, min_size=2, max_size=8),
    policies=st.tuples(main_policy, experiment_policy),
    run_after=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=2),
)
def test_no_byte_reachable_from_a_kept_version_is_ever_deleted(db, tmp_path, steps, policies, run_after):
    example = tmp_path / uuid.uuid4().hex[:8]
    with (
        override_settings(
            STRATA_STORAGE_URL=f"file://{example / 'store'}",
            STRATA_CACHE_DIR=example / "cache",
            STRATA_LOCAL_RESTORE_SECONDS=0,
            STRATA_RETENTION_APPROVAL_BYTES=10**15,
            STRATA_RETENTION_GRACE_HOURS=24,
        ),
        transaction.atomic(),
    ):
        _example(example, steps, policies, run_after)
        transaction.set_rollback(True)


def _example(example, steps, policies, run_after) -> None:
    RetentionPolicy.objects.all().delete()
    for position, (pattern, (keep, expire, warm, cold)) in enumerate(
        zip(["main", "exp/*"], policies, strict=True)
    ):
        RetentionPolicy.objects.create(
            pattern=pattern,
            position=position,
            keep_forever=keep,
            expire_after_days=expire,
            warm_after_days=warm,
            cold_after_days=cold,
        )
    today = 0
    protected: set[str] = set()
    first: Version | None = None
    for index, (branch, gap, seeds, protection) in enumerate(steps):
        today += gap
        if first is not None and not Branch.objects.filter(dataset=first.dataset, name=branch).exists():
            branch_create(dataset=first.dataset, name=branch, start=first, actor="alice")
        folder = example / "work" / branch.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for existing in folder.iterdir():
            existing.unlink()
        for seed in seeds:
            # Seeds 0-3 are shared by every branch (deduplicated across them), the
            # others are each branch's own, so packs die when a branch expires.
            content = seed if seed < 4 else seed + 100 * BRANCHES.index(branch)
            write_random(folder / f"f{seed}.bin", 3_000 + 997 * seed, content)
        before = set(Pack.objects.values_list("id", flat=True))
        result = version_push(
            path=str(folder), dataset_name="d", author="alice", branch=branch if first else "main"
        )
        version = result.version
        if version is None:
            continue
        first = first or version
        when = T0 + timedelta(days=today)
        Version.objects.filter(pk=version.pk).update(created=when)
        Pack.objects.exclude(id__in=before).update(created=when, tier_since=when)
        if protection == "golden":
            Version.objects.filter(pk=version.pk).update(golden=True)
            # A golden dataset's main takes changes only through change requests
            # unless a rule says otherwise; this property is about retention, so
            # its pushes go straight on.
            BranchProtection.objects.get_or_create(
                dataset=version.dataset,
                pattern="main",
                defaults={"refuse_direct": False, "required_approvals": 0},
            )
        elif protection == "tag":
            Tag.objects.create(dataset=version.dataset, name=f"t{index}", version=version, created_by="alice")
        elif protection == "pinned":
            _pin(version, index)
        if protection:
            protected.add(version.pk)

    backend = get_backend()
    for offset in sorted(run_after):
        run = retention_plan(now=T0 + timedelta(days=today + offset))
        run = retention_advance(run_id=run.pk)
        assert run.state == RetentionRun.State.DONE, run.error

        assert not Version.objects.filter(pk__in=protected, expired__isnull=False).exists()
        for pack in Pack.objects.all():
            assert backend.pack_size(pack.id) == pack.size  # no row without its bytes
            assert backend.tier_of(pack.id) == pack.tier
            if pack.tier == "cold":
                backend.request_restore(pack.id)  # restore_seconds is 0: readable at once
        survivors = list(Version.objects.filter(expired__isnull=True).select_related("dataset"))
        report = store_verify(versions=survivors, list_unreferenced=False)
        assert report.ok, report.broken


def _pin(version: Version, index: int) -> None:
    """Pinned by a model version, and consumed by the training run that made it."""
    from lineage.models import Edge, Node
    from registry.models import ModelPin, ModelVersion

    model_node = Node.objects.create(kind=Node.Kind.MODEL, key=f"model:m{index}", label=f"m{index} 1.0.0")
    model = ModelVersion.objects.create(node=model_node, name=f"m{index}", version="1.0.0")
    ModelPin.objects.create(model=model, role="train", version=version)
    if index % 2:  # half of them only by the run's input edge
        ModelPin.objects.filter(model=model).delete()
    version_node = Node.objects.filter(version=version).first() or Node.objects.create(
        kind=Node.Kind.VERSION, key=f"version:{version.pk}", label=str(version), version=version
    )
    run_node = Node.objects.create(kind=Node.Kind.RUN, key=f"run:test:{index}", label=f"train {index}")
    Edge.objects.create(src=version_node, dst=run_node)
