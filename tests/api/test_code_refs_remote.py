"""A remote push names its code too: `strata-client push --code` and
`Client.push(..., code=...)`, through a real server whose worker verifies the
bytes before it commits (the code waits on the upload with the rest of the ask)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from catalog.models import Version
from strata_client import Client
from tests.factories.files import ROOT, write_random

REPO = "https://git.example.org/data/cleaning"


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_remote_push_carries_its_code_through_verification(strata_server, tokens, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    write_random(source / "blob.bin", 300_000, seed=5)  # several chunks: a worker verifies them
    env = {
        **os.environ,
        "STRATA_URL": strata_server.url,
        "STRATA_TOKEN": tokens["alice"],
        "STRATA_CLIENT_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "strata_client", *args], env=env, capture_output=True, text=True
        )

    pushed = run("push", str(source), "blobs", "--code", f"{REPO}#3f2a9c1")
    assert pushed.returncode == 0, pushed.stderr
    head = Version.objects.get(dataset__name="blobs", semver="1.0.0")
    assert (head.code_repo, head.code_ref) == (REPO, "3f2a9c1")

    client = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "cache"))
    version = client.transport.call("GET", "/datasets/blobs/versions/main")[1]
    assert (version["code_repo"], version["code_ref"]) == (REPO, "3f2a9c1")

    write_random(source / "more.bin", 200_000, seed=6)
    result = client.push(str(source), "blobs", code=f"{REPO}#main")
    assert Version.objects.get(id=result.version).code == f"{REPO}#main"

    write_random(source / "again.bin", 100_000, seed=7)
    refused = run("push", str(source), "blobs", "--code", "#main")
    assert refused.returncode == 2
    assert refused.stderr == "error: '#main' is not a code reference: write REPOSITORY#COMMIT.\n"
    assert Version.objects.filter(dataset__name="blobs").count() == 2
