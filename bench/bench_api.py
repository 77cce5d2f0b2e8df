"""Remote push and pull through the API, against the same work done locally.

    .venv/bin/python bench/bench_api.py [--repeat 3] [--set bench/data/sets/small]

The set is the 20,000 files of about 4 KiB from `datagen.py`. Each repetition runs
four setups, each on a fresh database and a fresh store, so nothing is deduplicated
against another setup's data:

- ``cli-local``: `manage.py strata push/pull` on a local folder store;
- ``cli-s3``: the same on a bucket of the S3 server (SeaweedFS on loopback);
- ``api-s3``: `strata-client push/pull` against gunicorn (2 workers) on that S3
  server: packs go straight between the client and S3;
- ``api-local``: `strata-client` against gunicorn on a local folder store, where
  packs pass through the web process (for comparison).

The servers are warmed up first (a few small pushes and pulls), as a long-running
server is; the command-line setups pay their interpreter and Django start-up in
every command, as they do in use.

For each it times a first push, a second push of the unchanged folder, and a pull
into an empty folder, every command as its own process (so interpreter start-up
counts the same everywhere). The order of setups rotates from one repetition to the
next so that drift in the machine's speed hits all of them; medians and ratios are
what to quote. Every pull is checked byte for byte against the source, untimed.
Results go to bench/results/api-<time>.json and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_SET = BENCH_DIR / "data" / "sets" / "small"
SETUPS = ("cli-local", "cli-s3", "api-s3", "api-local")
OPERATIONS = ("push", "push unchanged", "pull")

sys.path.insert(0, str(PROJECT_DIR))


def _python() -> str:
    return str(PROJECT_DIR / ".venv" / "bin" / "python")


def _run(command: list[str], env: dict[str, str]) -> float:
    """Run a command; return its wall time. Dirty pages are flushed first, untimed."""
    os.sync()
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return seconds


def _quiet(command: list[str], env: dict[str, str]) -> str:
    completed = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def _digests(root: Path) -> dict[str, str]:
    from blake3 import blake3

    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = blake3(path.read_bytes()).hexdigest()
    return found


def _free_port() -> int:
    from tests.services import free_port

    return free_port()


class Setup:
    """One way of pushing and pulling, with its own database, store and caches."""

    def __init__(
        self, name: str, run_dir: Path, template_db: Path, base_env: dict[str, str], bucket: str
    ) -> None:
        self.name = name
        self.dir = run_dir / name
        self.dir.mkdir(parents=True)
        database = self.dir / "db.sqlite3"
        shutil.copy(template_db, database)
        store = (
            f"s3://{bucket}/{run_dir.name}-{name}" if name.endswith("s3") else f"file://{self.dir / 'store'}"
        )
        self.env = {
            **base_env,
            "DATABASE_URL": f"sqlite:///{database}",
            "STORAGE_URL": store,
            "STRATA_CACHE_DIR": str(self.dir / "server-cache"),
            "STRATA_VAR_DIR": str(self.dir / "var"),
            "STRATA_USER": "bench",
            "STRATA_CLIENT_CACHE": str(self.dir / "client-cache"),
        }
        self.server: subprocess.Popen[bytes] | None = None
        self.pulls = 0
        if name.startswith("api"):
            self._start_server()

    def _start_server(self) -> None:
        manage = [_python(), "manage.py"]
        _quiet([*manage, "shell", "-c", _CREATE_USER], self.env)
        token = json.loads(_quiet([*manage, "strata", "token", "create", "bench", "--json"], self.env))[
            "token"
        ]
        port = _free_port()
        self.log = open(self.dir / "gunicorn.log", "wb")  # noqa: SIM115 (closed in stop())
        self.server = subprocess.Popen(
            [
                str(PROJECT_DIR / ".venv" / "bin" / "gunicorn"),
                "config.wsgi",
                "--workers",
                "2",
                "--threads",
                "4",
                "--bind",
                f"127.0.0.1:{port}",
                "--timeout",
                "300",
            ],
            env={**self.env, "DEBUG": "0", "SECRET_KEY": "bench-only-secret", "ALLOWED_HOSTS": "127.0.0.1"},
            cwd=PROJECT_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/v1/schema", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise RuntimeError(f"gunicorn did not start: see {self.dir / 'gunicorn.log'}") from None
                time.sleep(0.2)
        self.env.update(STRATA_URL=url, STRATA_TOKEN=token)
        # A long-running server has imported its code and made its S3 client: warm
        # both workers up with a few small pushes and pulls, untimed.
        warm = self.dir / "warm-up"
        warm.mkdir()
        for index in range(4):
            (warm / f"file-{index}.txt").write_text(f"warm-up {index}\n" * 1000)
            client = [_python(), "-m", "strata_client"]
            _quiet([*client, "push", str(warm), "warm-up"], self.env)
            _quiet([*client, "pull", "warm-up", str(self.dir / f"warm-pulled-{index}")], self.env)

    def command(self, operation: str, source: Path) -> list[str]:
        if self.name.startswith("api"):
            base = [_python(), "-m", "strata_client"]
        else:
            base = [_python(), "manage.py", "strata"]
        if operation.startswith("push"):
            return [*base, "push", str(source), "bench", "--json"]
        self.pulls += 1
        return [*base, "pull", "bench", str(self.pull_dir()), "--json"]

    def pull_dir(self) -> Path:
        return self.dir / f"pulled-{self.pulls}"

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.log.close()


_CREATE_USER = (
    "from django.contrib.auth.models import Group, User;"
    "u = User.objects.create_user('bench', 'bench@example.org', 'bench-password');"
    "u.groups.add(Group.objects.get(name='steward'))"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="the folder to push")
    args = parser.parse_args()
    source = args.set.resolve()
    if not source.is_dir():
        import datagen

        print(f"making the 20,000-file set in {source} …", file=sys.stderr)
        datagen.make_small(source)

    from tests.services import SeaweedServer

    weed = None
    base_env = dict(os.environ)
    base_env.update(PYTHONPATH=str(PROJECT_DIR), DJANGO_SETTINGS_MODULE="config.settings")
    if not base_env.get("AWS_ENDPOINT_URL"):
        weed = SeaweedServer()
        weed.wait()
        base_env.update(
            AWS_ENDPOINT_URL=weed.endpoint,
            AWS_ACCESS_KEY_ID="strata",
            AWS_SECRET_ACCESS_KEY="strata",
            AWS_DEFAULT_REGION="us-east-1",
        )
    bucket = "strata-bench"
    work = Path(tempfile.mkdtemp(prefix="strata-bench-api-"))
    times: dict[str, dict[str, list[float]]] = {s: {o: [] for o in OPERATIONS} for s in SETUPS}
    try:
        os.environ.update({k: v for k, v in base_env.items() if k.startswith("AWS_")})
        from catalog.storage.backends.s3 import S3Backend

        S3Backend(bucket=bucket).ensure_bucket()
        template = work / "template.sqlite3"
        _quiet(
            [_python(), "manage.py", "migrate", "--noinput"],
            {**base_env, "DATABASE_URL": f"sqlite:///{template}"},
        )
        expected = _digests(source)
        for repetition in range(args.repeat):
            order = SETUPS[repetition % len(SETUPS) :] + SETUPS[: repetition % len(SETUPS)]
            run_dir = work / f"r{repetition}"
            setups = [Setup(name, run_dir, template, base_env, bucket) for name in order]
            try:
                for operation in OPERATIONS:
                    for setup in setups:
                        seconds = _run(setup.command(operation, source), setup.env)
                        times[setup.name][operation].append(seconds)
                        print(
                            f"r{repetition} {setup.name:<9} {operation:<15} {seconds:6.2f} s", file=sys.stderr
                        )
                        if operation == "pull" and _digests(setup.pull_dir()) != expected:
                            raise RuntimeError(f"{setup.name} pulled something other than the source")
            finally:
                for setup in setups:
                    setup.stop()
    finally:
        if weed is not None:
            weed.stop()
        shutil.rmtree(work, ignore_errors=True)

    medians = {s: {o: statistics.median(v) for o, v in ops.items()} for s, ops in times.items()}
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"api-{stamp}.json"
    out.write_text(
        json.dumps({"set": str(source), "repeat": args.repeat, "times": times, "medians": medians}, indent=2)
    )
    print(f"results: {out}", file=sys.stderr)
    print("| operation | " + " | ".join(SETUPS) + " | api-s3 / cli-local | api-s3 / cli-s3 |")
    print("|---|" + "---:|" * (len(SETUPS) + 2))
    for operation in OPERATIONS:
        row = [f"{medians[s][operation]:.2f}" for s in SETUPS]
        local_ratio = medians["api-s3"][operation] / medians["cli-local"][operation]
        s3_ratio = medians["api-s3"][operation] / medians["cli-s3"][operation]
        print(f"| {operation} | " + " | ".join(row) + f" | {local_ratio:.2f}× | {s3_ratio:.2f}× |")


if __name__ == "__main__":
    main()
