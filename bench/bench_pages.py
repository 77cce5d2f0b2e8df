"""Time the catalog, dataset and version pages on a catalog at scale, as a browser
would meet them: a real server process (gunicorn), a real HTTP client, signed in.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/strata_bench .venv/bin/python bench/seed_scale.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/strata_bench .venv/bin/python bench/bench_pages.py

Signs in as `bench-viewer` (a viewer in two teams: the visibility rule is in play on
every query), warms up, then requests each kind of page many times with varied
datasets, filters and folders, one request at a time, and prints p50, p95 and max
per kind. Target: p95 under 150 ms. The server is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Client:
    """A minimal HTTP client with a cookie jar: one new connection per request, as
    gunicorn's sync workers close each one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        for header in response.msg.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        connection.close()
        return response.status, data

    def sign_in(self, username: str, password: str) -> None:
        status, page = self.request("GET", "/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        body = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        status, _ = self.request(
            "POST", "/accounts/login/", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(
                f"could not sign in as {username} (HTTP {status}); run bench/seed_scale.py first"
            )


def start_server(port: int, workers: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(DEBUG="0", SECRET_KEY="bench-only-secret-key", ALLOWED_HOSTS=HOST, LOG_LEVEL="WARNING")
    if "DATABASE_URL" not in env:
        raise SystemExit("set DATABASE_URL to the seeded database (see bench/seed_scale.py)")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-b", f"{HOST}:{port}", "-w", str(workers), "--log-level", "warning"],
        cwd=str(ROOT),
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def page_paths(rng: random.Random, names: list[str], count: int) -> dict[str, list[str]]:
    """Varied addresses of each kind of page."""
    catalog_queries = [
        {},
        {"sort": "size"},
        {"sort": "name", "page": "120"},
        {"q": "reviews"},
        {"q": "speech models"},
        {"stage": "split"},
        {"stage": "cleaned", "sort": "size"},
        {"keyword": "audio-2"},
        {"owner": "owner-007"},
        {"golden": "on"},
        {"page": "300"},
    ]
    paths: dict[str, list[str]] = {"catalog": [], "dataset": [], "version": [], "version folder": []}
    for index in range(count):
        query = catalog_queries[index % len(catalog_queries)]
        paths["catalog"].append("/" + ("?" + urlencode(query) if query else ""))
        name = rng.choice(names)
        paths["dataset"].append(f"/datasets/{name}/")
        paths["version"].append(f"/datasets/{name}/versions/1.{rng.randint(0, 9)}.0/")
        folder = rng.choice(["train", "test", "validation", "meta"])
        paths["version folder"].append(f"/datasets/{name}/versions/1.{rng.randint(0, 9)}.0/?path={folder}")
    return paths


def dataset_names(client: Client, sample: int, rng: random.Random) -> list[str]:
    """Names of datasets the viewer can read, taken from the catalog itself."""
    names: set[str] = set()
    for page in rng.sample(range(1, 350), 25):
        status, body = client.request("GET", f"/?sort=name&page={page}")
        names.update(m.decode() for m in re.findall(rb'class="dataset-name" href="/datasets/([^/]+)/"', body))
        if len(names) >= sample:
            break
    return sorted(names)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per kind of page")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--user", default="bench-viewer")
    args = parser.parse_args()
    rng = random.Random(11)
    port = free_port()
    server = start_server(port, args.workers)
    try:
        client = Client(port)
        client.sign_in(args.user, "bench-password")
        names = dataset_names(client, 300, rng)
        paths = page_paths(rng, names, args.requests)
        for kind_paths in paths.values():  # warm up every worker and cache
            for path in kind_paths[:20]:
                client.request("GET", path)
        print(
            f"{args.requests} requests per kind of page, signed in as {args.user}, {args.workers} workers\n"
        )
        print("| page | p50 ms | p95 ms | max ms | bytes |")
        print("|---|---:|---:|---:|---:|")
        worst = 0.0
        for kind, kind_paths in paths.items():
            timings, sizes = [], []
            for path in kind_paths:
                began = time.perf_counter()
                status, body = client.request("GET", path)
                timings.append((time.perf_counter() - began) * 1000)
                if status != 200:
                    raise SystemExit(f"GET {path} answered {status}")
                sizes.append(len(body))
            p95 = percentile(timings, 0.95)
            worst = max(worst, p95)
            print(
                f"| {kind} | {statistics.median(timings):.1f} | {p95:.1f} | {max(timings):.1f} |"
                f" {int(statistics.median(sizes)):,} |"
            )
        print(f"\nworst p95: {worst:.1f} ms ({'under' if worst < 150 else 'OVER'} the 150 ms target)")
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
