"""Registry tests hash the personas' passwords cheaply; their data comes from the
shared `local_store` and `personas`."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(fast_passwords):
    """Every test here: see `fast_passwords` in tests/conftest.py."""
