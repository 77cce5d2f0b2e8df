"""In CI a test that needs PostgreSQL, Redis or the S3 server fails when it does
not get it, with one sentence naming the variable to set; it is never skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories.files import ROOT

NEEDS = [
    ("DATABASE_URL", "db", "DATABASE_URL does not name a PostgreSQL database"),
    ("STRATA_TEST_REDIS_URL", "redis_url", "STRATA_TEST_REDIS_URL is not set"),
    ("STRATA_TEST_S3_ENDPOINT", "s3_endpoint", "STRATA_TEST_S3_ENDPOINT is not set"),
]


def _run_in_ci_without(variable: str, fixture: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """pytest, in a process of its own with CI=true and `variable` unset, on one test
    that asks for `fixture`, with the project's fixtures and settings."""
    (folder / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    test = folder / "test_needs_a_service.py"
    test.write_text(f"def test_needs_a_service({fixture}):\n    pass\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    env.pop(variable, None)
    env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(test)],
        env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.parametrize(("variable", "fixture", "sentence"), NEEDS, ids=[need[0] for need in NEEDS])
def test_a_test_missing_its_service_in_ci_fails_naming_the_variable(variable, fixture, sentence, tmp_path):
    result = _run_in_ci_without(variable, fixture, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 error" in output and "skipped" not in output, output
    assert sentence in output, output
