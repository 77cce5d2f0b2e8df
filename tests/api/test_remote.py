"""Remote push and pull with the Python client, through a real server process.

The server is `manage.py runserver` in its own process on a loopback port, sharing
the test database and the store (a local folder, or a bucket on a real S3 server).
How many bytes that process moves is read from the kernel (/proc/PID/io: every byte
it reads or writes, files and sockets alike), so the claim "pack bytes go straight to
S3" is measured, not assumed: the same measurement on the local folder store, where
packs must pass through the web process, sees every one of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from strata_client import Client
from strata_client.errors import ClientError, NotFound
from tests.factories.files import ROOT, tree_digests, write_random

MiB = 1024 * 1024


def process_io(pid: int) -> int:
    """Bytes the process has read and written so far, through any file or socket."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


def make_tree(root: Path) -> None:
    """Incompressible data (so pack bytes are about as many as content bytes) in big
    and small files, an empty file, an empty folder, an executable and a link."""
    for index in range(3):
        write_random(root / "shards" / f"shard-{index}.bin", 6 * MiB, seed=index)
    for index in range(150):
        write_random(
            root / "small" / f"part-{index // 50}" / f"item-{index:03d}.bin", 3000 + index, seed=100 + index
        )
    (root / "empty.txt").write_text("")
    (root / "nothing-here").mkdir()
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "latest").symlink_to("shards/shard-2.bin")


def bucket_objects(store_url: str) -> dict[str, int]:
    bucket, _, prefix = store_url.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            found[item["Key"]] = int(item["Size"])
    return found


@pytest.mark.parametrize("store_url", ["s3", "local"], indirect=True)
def test_push_and_pull_through_a_live_server_move_pack_bytes_only_through_the_store(
    strata_server, store_url, tokens, tmp_path
):
    source = tmp_path / "source"
    make_tree(source)
    client = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "client-cache"))
    # A first small push and pull warm the server up: its first requests import
    # code and read the S3 client's service models, megabytes that are not data.
    write_random(tmp_path / "warm" / "up.bin", 100_000, seed=42)
    client.push(str(tmp_path / "warm"), "warm-up")
    client.pull("warm-up", str(tmp_path / "warm-pulled"))
    warm_objects = bucket_objects(store_url) if store_url.startswith("s3://") else {}

    before = process_io(strata_server.pid)
    first = client.push(str(source), "shots", message="first", stage="cleaned")
    push_io = process_io(strata_server.pid) - before
    assert first.created and first.semver == "1.0.0" and first.file_count == 155
    assert first.uploaded_bytes > 18 * MiB

    before = process_io(strata_server.pid)
    pulled = client.pull("shots@1.0.0", str(tmp_path / "pulled"))
    pull_io = process_io(strata_server.pid) - before
    assert tree_digests(tmp_path / "pulled") == tree_digests(source)
    assert os.access(tmp_path / "pulled" / "run.sh", os.X_OK)
    assert pulled.bytes_fetched > 18 * MiB

    if store_url.startswith("s3://"):
        # The web process moved ids, file lists and its database's pages: a
        # fraction of the packs (which would count at least once if they passed).
        print(f"server I/O: push {push_io:,} bytes for {first.uploaded_bytes:,} pack bytes; pull {pull_io:,}")
        assert push_io < first.uploaded_bytes / 4, f"the server moved {push_io} bytes during the push"
        assert pull_io < pulled.bytes_fetched / 4, f"the server moved {pull_io} bytes during the pull"
        added = {key: size for key, size in bucket_objects(store_url).items() if key not in warm_objects}
        assert sum(added.values()) == first.uploaded_bytes and len(added) == first.uploaded_packs
    else:
        # With a local folder the packs must pass through the web process, and the
        # same measurement sees every byte of them: it would catch them on S3 too.
        assert push_io > first.uploaded_bytes
        assert pull_io > pulled.bytes_fetched

    # An unchanged tree: nothing is uploaded and no version is made.
    objects_before = bucket_objects(store_url) if store_url.startswith("s3://") else None
    again = client.push(str(source), "shots", message="again")
    assert not again.created and again.version == first.version
    assert again.uploaded_packs == 0 and again.uploaded_bytes == 0
    if objects_before is not None:
        assert bucket_objects(store_url) == objects_before
    # A fresh client (no stat cache) reads every file, but still uploads nothing.
    fresh = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "other-cache"))
    assert fresh.push(str(source), "shots").uploaded_bytes == 0

    # One small edit uploads about one small file's worth.
    write_random(source / "small" / "part-0" / "item-000.bin", 5000, seed=999)
    edited = client.push(str(source), "shots", message="edit one file")
    assert edited.created and edited.semver == "1.1.0" and edited.new_bytes == 5000
    assert edited.uploaded_bytes < 64 * 1024
    client.pull("shots", str(tmp_path / "edited"))
    assert tree_digests(tmp_path / "edited") == tree_digests(source)
    assert client.resolve("shots") == edited.version
    assert client.resolve("shots@1.0.0") == first.version

    # Someone else moves the branch: the unchanged folder is no longer its head, so
    # pushing it again makes a version (the shortcut for unchanged folders checks).
    other = tmp_path / "other"
    (other / "x").mkdir(parents=True)
    (other / "x" / "y.txt").write_text("someone else's data\n")
    assert fresh.push(str(other), "shots").created
    back = client.push(str(source), "shots", message="back again")
    assert back.created and back.uploaded_bytes == 0


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_the_console_command_pushes_pulls_and_resolves(strata_server, tokens, tmp_path):
    source = tmp_path / "source"
    (source / "a").mkdir(parents=True)
    (source / "a" / "notes.txt").write_text("hello\n")
    write_random(source / "blob.bin", 300_000, seed=3)
    env = {
        **os.environ,
        "STRATA_URL": strata_server.url,
        "STRATA_TOKEN": tokens["alice"],
        "STRATA_CLIENT_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
    }

    def run(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        run_env = dict(env)
        if token is not None:
            # Another person on another machine: a stat cache of their own, which
            # never knows the folder was pushed (and so asks the server).
            run_env["STRATA_TOKEN"] = token
            run_env["STRATA_CLIENT_CACHE"] = str(tmp_path / f"cache-{token[-6:]}")
        return subprocess.run(
            [sys.executable, "-m", "strata_client", *args], env=run_env, capture_output=True, text=True
        )

    pushed = run("push", str(source), "notes", "-m", "from the shell")
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed notes@1.0.0 on main" in pushed.stdout
    resolved = run("resolve", "notes@main")
    assert resolved.returncode == 0 and len(resolved.stdout.strip()) == 64
    pulled = run("pull", "notes@1.0.0", str(tmp_path / "out"), "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert tree_digests(tmp_path / "out") == tree_digests(source)
    assert run("push", str(source), "notes").stdout.startswith("No changes")

    # Bad input: one sentence on stderr, exit 2.
    for args, message in [
        (("push", str(tmp_path / "nope"), "notes"), "does not exist"),
        (("pull", "notes@9.9.9", str(tmp_path / "x")), "has no branch, tag, version or id"),
        (("pull", "notes", str(tmp_path / "out")), "is not empty"),
        (("resolve", "ghost"), "no dataset named 'ghost'"),
        (("push", str(source), "bad name!"), "not a valid dataset name"),
        (("frobnicate",), "invalid choice"),
    ]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    refused = run("resolve", "notes", token="strata_not-a-real-token")
    assert refused.returncode == 2 and "token" in refused.stderr
    viewer = run("push", str(source), "notes", token=tokens["bob"])
    assert viewer.returncode == 2 and "steward role" in viewer.stderr
    no_url = subprocess.run(
        [sys.executable, "-m", "strata_client", "resolve", "notes"],
        env={k: v for k, v in env.items() if k != "STRATA_URL"},
        capture_output=True,
        text=True,
    )
    assert no_url.returncode == 2 and "STRATA_URL" in no_url.stderr


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_client_errors_name_the_problem(strata_server, tokens, tmp_path):
    client = Client(strata_server.url, tokens["bob"], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(NotFound, match="no dataset named 'ghost'"):
        client.resolve("ghost")
    with pytest.raises(ClientError, match="names no ref"):
        client.resolve("ghost@")
    with pytest.raises(ClientError, match="not a server address"):
        Client("ftp://example.org", tokens["bob"])


def test_the_client_imports_without_django():
    """Pipelines install the client without the server: importing it loads no Django."""
    code = "import sys, strata_client, strata_client.cli; assert 'django' not in sys.modules, 'django loaded'"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
