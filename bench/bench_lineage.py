"""Time the lineage page against a real server on a large graph (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/strata_lineage_bench \\
        .venv/bin/python bench/seed_lineage.py > /tmp/seed.json
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/strata_lineage_bench \\
        .venv/bin/python bench/bench_lineage.py /tmp/seed.json [--requests 200]

Starts gunicorn (2 workers, DEBUG off) on a free loopback port, signs in as
the seeded bench user, warms up, then asks for the depth-2 lineage page (both
directions) of the hub version — read by thousands of runs — and of ordinary
versions, one request at a time, and prints p50/p95/max per case with what
the hub's page drew: how many node boxes and the "+N more" text. Stops the
server it started. Not part of the test run.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-lineage-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer on {url} within {seconds:.0f} s")


def sign_in(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/accounts/login/").read()
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    body = urllib.parse.urlencode(
        {"username": USER, "password": PASSWORD, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=body, headers={"Referer": f"{base}/accounts/login/"}
    )
    opener.open(request).read()
    if not any(cookie.name == "sessionid" for cookie in jar):
        raise SystemExit("could not sign in as the bench user: run bench/seed_lineage.py first")
    return opener


def timed(opener: urllib.request.OpenerDirector, url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with opener.open(url, timeout=30) as response:
        html = response.read().decode()
        status = response.status
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise SystemExit(f"{url} answered {status}")
    return elapsed, html


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("seed", help="the JSON line bench/seed_lineage.py printed")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("set DATABASE_URL to the seeded PostgreSQL database")
    seed = json.loads(Path(args.seed).read_text())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-bench-only-secret-key",
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        STRATA_VAR_DIR=os.environ.get("STRATA_VAR_DIR", "/tmp/strata-lineage-bench"),
    )
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=str(ROOT),
        env=env,
    )
    try:
        wait_for(f"{base}/accounts/login/")
        opener = sign_in(base)
        cases = {
            f"hub version (read by {seed['hub_consumers']:,} runs)": [seed["hub"]],
            "ordinary versions (50 different)": seed["sample"],
        }
        results = {}
        hub_html = ""
        for name, nodes in cases.items():
            for node in nodes[:10]:  # warm up: connections, caches, query plans
                timed(opener, f"{base}/lineage/nodes/{node}/?depth=2&direction=both")
            times = []
            for i in range(args.requests):
                node = nodes[i % len(nodes)]
                elapsed, html = timed(opener, f"{base}/lineage/nodes/{node}/?depth=2&direction=both")
                times.append(elapsed)
                if node == seed["hub"]:
                    hub_html = html
            results[name] = times
        print(
            f"graph: {seed['nodes']:,} nodes, {seed['edges']:,} edges; {args.requests} requests per case, one at a time"
        )
        print("| page (depth 2, both directions) | p50 ms | p95 ms | max ms |")
        print("|---|---:|---:|---:|")
        for name, times in results.items():
            print(
                f"| {name} | {statistics.median(times):.0f} | {percentile(times, 0.95):.0f} | {max(times):.0f} |"
            )
        boxes = len(re.findall(r'class="node node-', hub_html))
        more = re.findall(r"\+[\d,]+ more", hub_html)
        print(f"hub page: {boxes} node boxes drawn; folded: {', '.join(dict.fromkeys(more)) or 'nothing'}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
