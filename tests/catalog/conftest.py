"""Retention tests run on a local store with the default policies."""

from __future__ import annotations

import pytest

from tests.factories.retention import default_policies


@pytest.fixture
def local_store(local_store, db, settings):
    """The shared local store, with the default retention policies, restores that
    take an hour and no run large enough to wait for an approver."""
    default_policies()
    settings.STRATA_LOCAL_RESTORE_SECONDS = 3600
    settings.STRATA_RETENTION_APPROVAL_BYTES = 10**12
    return local_store
