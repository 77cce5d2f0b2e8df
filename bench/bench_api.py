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

With ``--baseline DIR`` (a checkout of an earlier commit, e.g. made by
`git worktree add DIR REV`) a fifth setup, ``api-s3-before``, runs that checkout's
server and client on the same S3 server, interleaved with the others: the way to
measure what a change of the protocol costs, side by side in one run.
``--setups`` picks setups; ``--set large`` pushes the 4 × 256 MiB set instead.

A remote push is committed by a Celery worker, which verifies every byte the push
sent (see docs/security.md); each api setup runs one worker beside gunicorn, on
Redis when ``CELERY_BROKER_URL`` names one, else on the filesystem broker.

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
LARGE_SET = BENCH_DIR / "data" / "sets" / "large"
SETUPS = ("cli-local", "cli-s3", "api-s3", "api-local")
BASELINE = "api-s3-before"
OPERATIONS = ("push", "push unchanged", "pull")

sys.path.insert(0, str(PROJECT_DIR))


def _python() -> str:
    return str(PROJECT_DIR / ".venv" / "bin" / "python")


def _run(command: list[str], env: dict[str, str], cwd: Path = PROJECT_DIR) -> float:
    """Run a command; return its wall time. Dirty pages are flushed first, untimed."""
    os.sync()
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return seconds


def _quiet(command: list[str], env: dict[str, str], cwd: Path = PROJECT_DIR) -> str:
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
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
    from tests.workers import free_port

    return free_port()


class Setup:
    """One way of pushing and pulling, with its own database, store and caches."""

    def __init__(
        self,
        name: str,
        run_dir: Path,
        template_db: Path,
        base_env: dict[str, str],
        bucket: str,
        project: Path = PROJECT_DIR,
    ) -> None:
        self.name = name
        self.project = project
        self.worker: subprocess.Popen[bytes] | None = None
        self.dir = run_dir / name
        self.dir.mkdir(parents=True)
        database = self.dir / "db.sqlite3"
        shutil.copy(template_db, database)
        store = (
            # A prefix of this run's own: packs another run left in the bucket
            # would turn uploads into no-ops (or, now, into proofs of possession).
            f"s3://{bucket}/{self.dir.relative_to(Path(tempfile.gettempdir())).as_posix().replace('/', '-')}"
            if name.endswith("s3")
            else f"file://{self.dir / 'store'}"
        )
        self.env = {
            **base_env,
            "PYTHONPATH": str(project),
            "DATABASE_URL": f"sqlite:///{database}",
            "STORAGE_URL": store,
            "STRATA_CACHE_DIR": str(self.dir / "server-cache"),
            "STRATA_VAR_DIR": str(self.dir / "var"),
            "STRATA_USER": "bench",
            "STRATA_CLIENT_CACHE": str(self.dir / "client-cache"),
        }
        if base_env.get("CELERY_BROKER_URL"):
            # A queue of this run's own: a worker left by another run must not
            # take tasks about a database it does not have.
            self.env["CELERY_TASK_DEFAULT_QUEUE"] = f"bench-{run_dir.parent.name}-{run_dir.name}-{name}"
        self.server: subprocess.Popen[bytes] | None = None
        self.label = name
        self.pulls = 0
        if name.startswith("api"):
            try:
                self._start_server()
            except BaseException:
                self.stop()
                raise

    def _start_server(self) -> None:
        manage = [_python(), str(self.project / "manage.py")]
        _quiet([*manage, "shell", "-c", _CREATE_USER], self.env, self.project)
        token = json.loads(
            _quiet([*manage, "strata", "token", "create", "bench", "--json"], self.env, self.project)
        )["token"]
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
            cwd=self.project,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if (self.project / "catalog" / "services" / "remote" / "verification.py").exists():
            self.worker_log = open(self.dir / "worker.log", "wb")  # noqa: SIM115 (closed in stop())
            self.worker = subprocess.Popen(
                [_python(), "-m", "celery", "-A", "config", "worker", "--concurrency", "1",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
                env={**self.env, "DEBUG": "0", "SECRET_KEY": "bench-only-secret"},
                cwd=self.project, stdout=self.worker_log, stderr=subprocess.STDOUT,
            )  # fmt: skip
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
            _quiet([*client, "push", str(warm), "warm-up"], self.env, self.project)
            _quiet(
                [*client, "pull", "warm-up", str(self.dir / f"warm-pulled-{index}")], self.env, self.project
            )

    def command(self, operation: str, source: Path) -> list[str]:
        if self.name.startswith("api"):
            base = [_python(), "-m", "strata_client"]
        else:
            base = [_python(), str(self.project / "manage.py"), "strata"]
        if operation.startswith("push"):
            return [*base, "push", str(source), "bench", "--json"]
        self.pulls += 1
        return [*base, "pull", "bench", str(self.pull_dir()), "--json"]

    def pull_dir(self) -> Path:
        return self.dir / f"pulled-{self.pulls}"

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
            self.worker_log.close()
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
    parser.add_argument("--set", default=str(DEFAULT_SET), help="the folder to push, or 'large'")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated setups to run")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of an earlier commit to run as api-s3-before"
    )
    args = parser.parse_args()
    import datagen

    if args.set == "large":
        source = datagen.ensure(LARGE_SET, datagen.make_large).resolve()
    else:
        source = Path(args.set).resolve()
        if not source.is_dir():
            print(f"making the 20,000-file set in {source} …", file=sys.stderr)
            datagen.ensure(source, datagen.make_small)
    chosen = tuple(name for name in args.setups.split(",") if name)
    if args.baseline is not None:
        chosen = (*chosen, BASELINE)
    for name in chosen:
        if name not in (*SETUPS, BASELINE):
            parser.error(f"{name} is not a setup: use {', '.join(SETUPS)}")

    from tests.workers import SeaweedServer

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
    times: dict[str, dict[str, list[float]]] = {s: {o: [] for o in OPERATIONS} for s in chosen}
    try:
        os.environ.update({k: v for k, v in base_env.items() if k.startswith("AWS_")})
        from strata_store.backends.s3 import S3Backend

        S3Backend(bucket=bucket).ensure_bucket()
        # Each checkout's own schema: an earlier commit's code on a later schema
        # would not run.
        templates = {}
        for project in {PROJECT_DIR, *([args.baseline.resolve()] if args.baseline else [])}:
            templates[project] = work / f"template-{len(templates)}.sqlite3"
            _quiet(
                [_python(), str(project / "manage.py"), "migrate", "--noinput"],
                {**base_env, "PYTHONPATH": str(project), "DATABASE_URL": f"sqlite:///{templates[project]}"},
                project,
            )
        expected = _digests(source)
        for repetition in range(args.repeat):
            order = chosen[repetition % len(chosen) :] + chosen[: repetition % len(chosen)]
            run_dir = work / f"r{repetition}"
            setups = [
                Setup(
                    "api-s3" if name == BASELINE else name,
                    run_dir / name if name == BASELINE else run_dir,
                    templates[args.baseline.resolve() if name == BASELINE else PROJECT_DIR],
                    base_env,
                    bucket,
                    project=args.baseline.resolve() if name == BASELINE else PROJECT_DIR,
                )
                for name in order
            ]
            for name, setup in zip(order, setups, strict=True):
                setup.label = name
            try:
                for operation in OPERATIONS:
                    for setup in setups:
                        seconds = _run(setup.command(operation, source), setup.env, setup.project)
                        times[setup.label][operation].append(seconds)
                        print(
                            f"r{repetition} {setup.label:<13} {operation:<15} {seconds:6.2f} s",
                            file=sys.stderr,
                        )
                        if operation == "pull" and _digests(setup.pull_dir()) != expected:
                            raise RuntimeError(f"{setup.label} pulled something other than the source")
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
    print(
        "| operation | "
        + " | ".join(chosen)
        + " |"
        + "".join(f" {a} / {b} |" for a, b in _RATIOS if a in chosen and b in chosen)
    )
    print("|---|" + "---:|" * (len(chosen) + sum(1 for a, b in _RATIOS if a in chosen and b in chosen)))
    for operation in OPERATIONS:
        row = [f"{medians[s][operation]:.2f} s" for s in chosen]
        ratios = [
            f"{medians[a][operation] / medians[b][operation]:.2f}×"
            for a, b in _RATIOS
            if a in chosen and b in chosen
        ]
        print(f"| {operation} | " + " | ".join(row + ratios) + " |")


_RATIOS = (("api-s3", "cli-local"), ("api-s3", "cli-s3"), ("api-s3", BASELINE))

if __name__ == "__main__":
    main()
