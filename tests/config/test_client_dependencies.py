"""`pip install .` gives a client that imports: every library the client loads is
declared in pyproject.toml, or is required by one that is."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
OURS = {
    "strata", "catalog", "cards", "config", "governance", "lifecycle", "lineage", "ops", "registry",
    "strata_client", "strata_store",
}  # fmt: skip

IMPORT_CLIENT = """
import json, sys
before = set(sys.modules)
import strata_client, strata_client.cli, strata_client.client, strata_client.lineage
import strata_client.pull, strata_client.push
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules if name not in before})))
"""


def _name(requirement: str) -> str:
    return Requirement(requirement).name.lower().replace("_", "-")


def _with_requirements(names: set[str]) -> set[str]:
    """The distributions named, and everything they require, transitively."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(line))
    return found


def test_every_library_the_client_imports_is_installed_with_it():
    declared = {
        _name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CLIENT], cwd=ROOT, capture_output=True, text=True, check=True
    )
    modules = [m for m in json.loads(result.stdout) if m not in sys.stdlib_module_names and m not in OURS]
    owners = importlib.metadata.packages_distributions()
    distributions = {dist.lower().replace("_", "-") for module in modules for dist in owners.get(module, [])}
    assert distributions, modules
    assert "django" not in distributions, "the client must not need Django"
    installed_with_it = _with_requirements(declared)
    assert distributions <= installed_with_it, (
        f"imported but not declared: {distributions - installed_with_it}"
    )


def test_the_installed_distribution_is_the_client_and_the_store_without_server_code(tmp_path):
    """`pip install .` brings the `strata-client` command and the store it needs, and
    not a line of the server: no Django app, no settings."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("strata-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top = {
            name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")
        }
    assert top == {"strata_client", "strata_store"}
