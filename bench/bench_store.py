"""Strata against DVC 3, on the same data, in the same run.

    .venv/bin/python bench/bench_store.py [--repeat 3] [--only small|large|jsonl]

Three data sets (see `datagen.py`): 20,000 small files, four 256 MiB files, and a
200 MB JSONL file with two edited versions. For each, every repetition measures
Strata (push, push again unchanged, pull), DVC (add, push, add again unchanged,
checkout from its cache, pull with an empty cache) and `cp -r` as the floor, each
in a fresh store, and quotes medians and ratios.

Why it is built this way:

- The disk's write speed here swings 2-5x from one minute to the next (the machine
  hands free memory back to its host), so figures from different runs cannot be
  compared. The tools are interleaved within each repetition, and the order rotates
  from one repetition to the next, so drift hits both; ratios are what to quote.
- Nothing is deleted while measuring: a big delete makes the next writes slow.
  Old folders stay in the run folder until the end.
- Dirty pages are flushed (`sync`, untimed) before each timed step, so a step
  never pays for the previous step's writes.
- Each command runs under `/usr/bin/time` for its peak memory (max RSS). The CPU
  time the rest of the machine used meanwhile is recorded too, so a figure taken
  while something else was running (a test suite) can be spotted and re-measured.
- DVC lives in its own venv under bench/data/, never in the project's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datagen

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
SETS_DIR = DATA_DIR / "sets"
RUNS_DIR = DATA_DIR / "runs"
RESULTS_DIR = BENCH_DIR / "results"
DVC_VENV = DATA_DIR / "venv-dvc"
DVC_BIN = DVC_VENV / "bin" / "dvc"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
TIME_BIN = "/usr/bin/time"
MIB = 1024 * 1024

SET_NAMES = ("small", "large", "jsonl")
# A step is flagged as disturbed when other processes used this much CPU during it
# (as a fraction of its wall time). Kernel writeback of the step's own writes counts
# as "other", so the threshold is loose.
DISTURBED_FRACTION = 0.5


class BenchError(RuntimeError):
    """A command the benchmark depends on failed."""


# -- running commands -----------------------------------------------------------------


@dataclass(slots=True)
class Measurement:
    """One timed command: wall time, peak memory and whose CPU was busy."""

    seconds: float
    peak_mib: float
    cpu_seconds: float  # user + system of the command and its children
    other_cpu_seconds: float  # everything else the machine did meanwhile
    stdout: str = field(default="", repr=False)

    @property
    def disturbed(self) -> bool:
        return self.other_cpu_seconds > max(0.5, DISTURBED_FRACTION * self.seconds)

    def as_dict(self) -> dict[str, object]:
        result = asdict(self)
        del result["stdout"]
        result["disturbed"] = self.disturbed
        return result


def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent working (not idle, not waiting on I/O)."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def run(command: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> Measurement:
    """Run `command` to completion under /usr/bin/time and measure it.

    Wall time comes from perf_counter around the process (finer than time's %e);
    peak memory is time's %M, the largest RSS of the command or any child it waited for.
    """
    with tempfile.NamedTemporaryFile("r", prefix="bench-time-", suffix=".txt") as report:
        busy_before = _busy_cpu_seconds()
        started = time.perf_counter()
        completed = subprocess.run(
            [TIME_BIN, "-f", "%M %U %S", "-o", report.name, *map(str, command)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        busy = _busy_cpu_seconds() - busy_before
        # time writes "Command exited with non-zero status N" first on failure.
        time_line = report.read().strip().splitlines()[-1]
    if completed.returncode != 0:
        raise BenchError(
            f"{' '.join(map(str, command))} failed with exit code {completed.returncode}:\n"
            f"{completed.stderr[-3000:]}"
        )
    max_rss_kib, user, system = time_line.split()
    cpu = float(user) + float(system)
    return Measurement(
        seconds=seconds,
        peak_mib=int(max_rss_kib) / 1024,
        cpu_seconds=cpu,
        other_cpu_seconds=max(0.0, busy - cpu),
        stdout=completed.stdout,
    )


def quiet(command: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run an untimed setup command; fail loudly if it fails."""
    completed = subprocess.run(list(map(str, command)), cwd=cwd, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise BenchError(f"{' '.join(map(str, command))} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def settle() -> None:
    """Flush dirty pages so the next timed step does not pay for earlier writes."""
    os.sync()


def move_aside(path: Path, aside: Path) -> None:
    """Take `path` out of the way without deleting it (deleting is slow here and
    slows the writes after it); the run folder is removed at the end."""
    aside.mkdir(parents=True, exist_ok=True)
    path.rename(aside / f"{path.name}-{time.monotonic_ns()}")


# -- the tools ------------------------------------------------------------------------


class Strata:
    """Strata's command line on the embedded defaults, in a private var folder."""

    def __init__(self, var_dir: Path) -> None:
        self.env = {
            key: value
            for key, value in os.environ.items()
            # A shell set up for PostgreSQL, S3 or Redis must not leak into the benchmark.
            if key
            not in {
                "DATABASE_URL",
                "STORAGE_URL",
                "CELERY_BROKER_URL",
                "STRATA_CACHE_DIR",
                "STRATA_PACK_SIZE",
            }
        }
        self.env["STRATA_VAR_DIR"] = str(var_dir)
        self.env["STRATA_USER"] = "bench"
        quiet([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR, env=self.env)

    def manage(self, *args: str | Path) -> Measurement:
        settle()
        return run([sys.executable, "manage.py", "strata", *args], cwd=PROJECT_DIR, env=self.env)

    def push(self, path: Path, dataset: str) -> tuple[Measurement, dict[str, object]]:
        measurement = self.manage("push", path, dataset, "--json")
        return measurement, json.loads(measurement.stdout)

    def pull(self, dataset: str, dest: Path) -> Measurement:
        return self.manage("pull", dataset, dest, "--json")


class Dvc:
    """A fresh, git-less DVC repository with a local remote, copying (not linking)
    from its cache, as the comparison needs independent copies like Strata's."""

    def __init__(self, repo: Path, remote: Path) -> None:
        self.repo = repo
        self.env = dict(os.environ, DVC_NO_ANALYTICS="1")
        repo.mkdir(parents=True)
        remote.mkdir(parents=True)
        for args in (
            ["init", "--no-scm"],
            ["config", "core.analytics", "false"],
            ["config", "cache.type", "copy"],
            # DVC's hash cache (state db) otherwise goes under /var/tmp/dvc.
            ["config", "core.site_cache_dir", str(repo / ".dvc" / "site-cache")],
            ["remote", "add", "-d", "local", str(remote)],
        ):
            quiet([DVC_BIN, *args], cwd=repo, env=self.env)

    def __call__(self, *args: str) -> Measurement:
        settle()
        return run([DVC_BIN, *args], cwd=self.repo, env=self.env)

    @property
    def cache_bytes(self) -> int:
        return datagen.tree_bytes(self.repo / ".dvc" / "cache")


def ensure_dvc() -> str:
    """Create bench/data/venv-dvc with the pinned DVC unless it is there already."""
    if not DVC_BIN.exists():
        print(f"Installing {REQUIREMENTS.read_text().split()[-1]} into {DVC_VENV} ...", file=sys.stderr)
        base_python = getattr(sys, "_base_executable", sys.executable)
        quiet([base_python, "-m", "venv", DVC_VENV], cwd=BENCH_DIR)
        quiet([DVC_VENV / "bin" / "pip", "install", "--quiet", "-r", REQUIREMENTS], cwd=BENCH_DIR)
    return quiet([DVC_BIN, "--version"], cwd=BENCH_DIR).strip()


# -- one repetition of one data set ----------------------------------------------------


@dataclass(slots=True)
class Repetition:
    """Where one repetition works, and what it measured."""

    folder: Path
    steps: dict[str, Measurement] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def aside(self) -> Path:
        return self.folder / "aside"

    def record(self, name: str, measurement: Measurement) -> Measurement:
        self.steps[name] = measurement
        mark = "  (disturbed)" if measurement.disturbed else ""
        print(
            f"    {name:<24} {measurement.seconds:8.2f} s {measurement.peak_mib:8.0f} MiB"
            f"  other CPU {measurement.other_cpu_seconds:5.1f} s{mark}",
            file=sys.stderr,
            flush=True,
        )
        return measurement


def measure_strata(rep: Repetition, source: Path, edits: dict[str, Path]) -> None:
    """Push into a fresh store, push the unchanged tree again, pull into a fresh
    folder; then push each edited version on top of the first."""
    strata = Strata(rep.folder / "strata-var")
    measurement, result = strata.push(source, "bench")
    rep.record("strata push", measurement)
    measurement, result = strata.push(source, "bench")
    rep.record("strata push unchanged", measurement)
    if result["created"]:
        raise BenchError("the second push of an unchanged tree made a new version")
    rep.record("strata pull", strata.pull("bench", rep.folder / "strata-pull"))
    logical = int(result["logical_bytes"])
    for edit, edited in edits.items():
        measurement, result = strata.push(edited, "bench")
        rep.record(f"strata push {edit}", measurement)
        rep.figures[f"strata new bytes {edit} %"] = 100 * int(result["new_bytes"]) / logical
        rep.figures[f"strata stored bytes {edit} %"] = 100 * int(result["stored_bytes"]) / logical


def measure_dvc(rep: Repetition, source: Path, edits: dict[str, Path]) -> None:
    """add + push into a fresh repository, add again unchanged, checkout from the
    warm cache, pull with an empty cache; then add + push each edited version."""
    dvc = Dvc(rep.folder / "dvc-repo", rep.folder / "dvc-remote")
    workspace = dvc.repo / "data"
    quiet(["cp", "-r", source, workspace], cwd=rep.folder)
    logical = datagen.tree_bytes(workspace)
    rep.record("dvc add", dvc("add", "data"))
    rep.record("dvc push", dvc("push"))
    rep.record("dvc add unchanged", dvc("add", "data"))
    move_aside(workspace, rep.aside)
    rep.record("dvc checkout", dvc("checkout"))
    move_aside(workspace, rep.aside)
    move_aside(dvc.repo / ".dvc" / "cache", rep.aside)
    rep.record("dvc pull", dvc("pull"))
    for edit, edited in edits.items():
        move_aside(workspace, rep.aside)
        quiet(["cp", "-r", edited, workspace], cwd=rep.folder)
        before = dvc.cache_bytes
        rep.record(f"dvc add {edit}", dvc("add", "data"))
        rep.figures[f"dvc new bytes {edit} %"] = 100 * (dvc.cache_bytes - before) / logical
        rep.record(f"dvc push {edit}", dvc("push"))


def measure_copy(rep: Repetition, source: Path, edits: dict[str, Path]) -> None:
    """`cp -r` of the same data: what writing the bytes costs at all."""
    settle()
    rep.record("cp -r", run(["cp", "-r", source, rep.folder / "copy"], cwd=rep.folder))


MEASURERS: dict[str, Callable[[Repetition, Path, dict[str, Path]], None]] = {
    "strata": measure_strata,
    "dvc": measure_dvc,
    "cp": measure_copy,
}


def measure_set(
    name: str, source: Path, edits: dict[str, Path], run_dir: Path, repeat: int
) -> list[Repetition]:
    """Measure one data set `repeat` times, rotating which tool goes first."""
    repetitions = []
    order = list(MEASURERS)
    for index in range(repeat):
        rep = Repetition(run_dir / name / f"rep-{index + 1}")
        rep.folder.mkdir(parents=True)
        rotated = order[index % len(order) :] + order[: index % len(order)]
        print(f"  {name} repetition {index + 1}/{repeat} ({', '.join(rotated)})", file=sys.stderr, flush=True)
        for tool in rotated:
            MEASURERS[tool](rep, source, edits)
        repetitions.append(rep)
    return repetitions


def prepare_sets(names: Sequence[str]) -> dict[str, tuple[Path, dict[str, Path]]]:
    """Generate (once) the data sets asked for: {name: (source, {edit: edited})}."""
    SETS_DIR.mkdir(parents=True, exist_ok=True)
    sets: dict[str, tuple[Path, dict[str, Path]]] = {}
    if "small" in names:
        sets["small"] = (datagen.ensure(SETS_DIR / "small", datagen.make_small), {})
    if "large" in names:
        sets["large"] = (datagen.ensure(SETS_DIR / "large", datagen.make_large), {})
    if "jsonl" in names:
        v1 = datagen.ensure(SETS_DIR / "jsonl-v1", datagen.make_jsonl)
        block = datagen.ensure(SETS_DIR / "jsonl-block", lambda path: datagen.make_jsonl_block(path, v1))
        scattered = datagen.ensure(
            SETS_DIR / "jsonl-scattered", lambda path: datagen.make_jsonl_scattered(path, v1)
        )
        sets["jsonl"] = (v1, {"block": block, "scattered": scattered})
    return sets


# -- summary --------------------------------------------------------------------------


def median_of(repetitions: list[Repetition], *steps: str) -> float:
    """Median over repetitions of the summed wall time of `steps`."""
    return statistics.median(sum(rep.steps[step].seconds for step in steps) for rep in repetitions)


def median_figure(repetitions: list[Repetition], figure: str) -> float:
    return statistics.median(rep.figures[figure] for rep in repetitions)


def peak(repetitions: list[Repetition], prefix: str) -> float:
    """Largest peak RSS of any step of one tool, over all repetitions."""
    return max(m.peak_mib for rep in repetitions for step, m in rep.steps.items() if step.startswith(prefix))


@dataclass(slots=True)
class Row:
    """One line of the comparison: Strata's work against DVC's equivalent."""

    data_set: str
    work: str
    strata: float
    dvc: float | None
    dvc_detail: str = ""
    disturbed: bool = False

    @property
    def ratio(self) -> float | None:
        return self.dvc / self.strata if self.dvc is not None else None


def _disturbed(repetitions: list[Repetition], *steps: str) -> bool:
    """True when most repetitions of these steps ran while the machine was busy."""
    bad = sum(any(rep.steps[step].disturbed for step in steps) for rep in repetitions)
    return bad * 2 > len(repetitions)


def summarise(name: str, repetitions: list[Repetition]) -> list[Row]:
    """The median rows of one data set."""

    def row(work: str, strata_steps: tuple[str, ...], dvc_steps: tuple[str, ...] | None) -> Row:
        dvc_total = median_of(repetitions, *dvc_steps) if dvc_steps else None
        detail = ""
        if dvc_steps and len(dvc_steps) > 1:
            detail = " + ".join(f"{median_of(repetitions, step):.2f}" for step in dvc_steps) + " = "
        return Row(
            name,
            work,
            median_of(repetitions, *strata_steps),
            dvc_total,
            detail,
            _disturbed(repetitions, *strata_steps, *(dvc_steps or ())),
        )

    rows = [
        row("push · DVC add + push", ("strata push",), ("dvc add", "dvc push")),
        row("push unchanged · DVC add unchanged", ("strata push unchanged",), ("dvc add unchanged",)),
        row("pull · DVC checkout (warm cache)", ("strata pull",), ("dvc checkout",)),
        row("pull · DVC pull (empty cache)", ("strata pull",), ("dvc pull",)),
    ]
    for edit in ("block", "scattered"):
        if f"strata push {edit}" in repetitions[0].steps:
            rows.append(
                row(
                    f"push {edit} edit · DVC add + push",
                    (f"strata push {edit}",),
                    (f"dvc add {edit}", f"dvc push {edit}"),
                )
            )
    copy = median_of(repetitions, "cp -r")
    rows.append(Row(name, "`cp -r` (floor)", copy, None, disturbed=_disturbed(repetitions, "cp -r")))
    return rows


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| data set | work (Strata · DVC) | Strata | DVC | DVC ÷ Strata |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        dvc = f"{r.dvc_detail}{_seconds(r.dvc)}" if r.dvc is not None else ""
        ratio = f"{r.ratio:.1f}×" if r.ratio is not None else ""
        mark = " †" if r.disturbed else ""
        lines.append(f"| {r.data_set} | {r.work}{mark} | {_seconds(r.strata)} | {dvc} | {ratio} |")
    return "\n".join(lines)


def memory_table(results: dict[str, list[Repetition]]) -> str:
    lines = ["| data set | Strata peak RSS | DVC peak RSS |", "|---|---:|---:|"]
    for name, repetitions in results.items():
        lines.append(
            f"| {name} | {peak(repetitions, 'strata'):.0f} MiB | {peak(repetitions, 'dvc'):.0f} MiB |"
        )
    return "\n".join(lines)


def edits_table(repetitions: list[Repetition]) -> str:
    lines = [
        "| edit | Strata new bytes | Strata stored (compressed) | DVC cache growth |",
        "|---|---:|---:|---:|",
    ]
    for edit in ("block", "scattered"):
        lines.append(
            f"| {edit} | {median_figure(repetitions, f'strata new bytes {edit} %'):.1f}% "
            f"| {median_figure(repetitions, f'strata stored bytes {edit} %'):.1f}% "
            f"| {median_figure(repetitions, f'dvc new bytes {edit} %'):.1f}% |"
        )
    return "\n".join(lines)


@dataclass(slots=True)
class Target:
    goal: str
    figure: str
    met: bool


def targets(results: dict[str, list[Repetition]]) -> list[Target]:
    """The project's performance targets, checked against this run's medians."""
    checks: list[Target] = []

    def ratio(name: str, strata_step: str, dvc_steps: tuple[str, ...], at_least: float, goal: str) -> None:
        if name in results:
            value = median_of(results[name], *dvc_steps) / median_of(results[name], strata_step)
            checks.append(Target(goal, f"{value:.1f}×", value >= at_least))

    ratio(
        "small",
        "strata push",
        ("dvc add", "dvc push"),
        5,
        "push ≥ 5× faster than DVC add + push, small files",
    )
    ratio(
        "large",
        "strata push",
        ("dvc add", "dvc push"),
        3,
        "push ≥ 3× faster than DVC add + push, large files",
    )
    ratio("small", "strata pull", ("dvc checkout",), 3, "pull ≥ 3× faster than DVC checkout, small files")
    ratio("large", "strata pull", ("dvc checkout",), 1, "pull no slower than DVC checkout, large files")
    if "small" in results:
        value = median_of(results["small"], "strata push unchanged")
        checks.append(Target("push of the unchanged small-file tree < 0.5 s", f"{value:.2f} s", value < 0.5))
    if "jsonl" in results:
        for edit, limit in (("scattered", 30), ("block", 3)):
            value = median_figure(results["jsonl"], f"strata new bytes {edit} %")
            checks.append(
                Target(
                    f"new bytes after the {edit} edit < {limit}% of the file", f"{value:.1f}%", value < limit
                )
            )
    if results:
        value = max(peak(repetitions, "strata") for repetitions in results.values())
        checks.append(Target("Strata peak memory < 500 MiB throughout", f"{value:.0f} MiB", value < 500))
    return checks


def targets_table(checks: list[Target]) -> str:
    lines = ["| target | this run | |", "|---|---:|---|"]
    lines += [f"| {c.goal} | {c.figure} | {'met' if c.met else '**not met**'} |" for c in checks]
    return "\n".join(lines)


# -- the run --------------------------------------------------------------------------


def machine() -> dict[str, object]:
    """What the figures were measured on, and which code they measured."""

    def output(*command: str) -> str:
        return subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_DIR).stdout.strip()

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": output("nproc"),
        "cpu": cpu_model,
        "free -h": output("free", "-h"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "strata commit": output("git", "rev-parse", "HEAD"),
        "strata uncommitted files": output(
            "git", "status", "--porcelain", "--untracked-files=no"
        ).splitlines(),
    }


def save(results: dict[str, list[Repetition]], info: dict[str, object], started: datetime.datetime) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"store-{started:%Y%m%dT%H%M%SZ}-{'-'.join(results)}.json"
    payload = {
        **info,
        "started": started.isoformat(),
        "sets": {
            name: {
                "summary": [asdict(row) | {"ratio": row.ratio} for row in summarise(name, repetitions)],
                "repetitions": [
                    {"steps": {step: m.as_dict() for step, m in rep.steps.items()}, "figures": rep.figures}
                    for rep in repetitions
                ],
            }
            for name, repetitions in results.items()
        },
        "targets": [asdict(check) for check in targets(results)],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def report(results: dict[str, list[Repetition]], repeat: int) -> str:
    rows = [row for name, repetitions in results.items() for row in summarise(name, repetitions)]
    parts = [
        f"Medians of {repeat} repetitions. † most repetitions ran while other processes were busy.",
        "",
        markdown_table(rows),
        "",
        memory_table(results),
    ]
    if "jsonl" in results:
        parts += ["", "New bytes after an edit, as % of the file:", "", edits_table(results["jsonl"])]
    parts += ["", targets_table(targets(results))]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per data set (default 3)")
    parser.add_argument(
        "--only", choices=SET_NAMES, action="append", help="measure only this set (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folder (stores, copies) afterwards")
    options = parser.parse_args(argv)
    if not Path(TIME_BIN).exists():
        print(f"{TIME_BIN} is missing: install it with `apt-get install -y time`.", file=sys.stderr)
        return 2

    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    names = options.only or list(SET_NAMES)
    info = machine() | {"dvc": ensure_dvc(), "repeat": options.repeat}
    sets = prepare_sets(names)
    run_dir = RUNS_DIR / f"{started:%Y%m%dT%H%M%SZ}"
    results: dict[str, list[Repetition]] = {}
    try:
        for name in names:
            source, edits = sets[name]
            print(f"{name}: {datagen.tree_bytes(source) / MIB:,.0f} MiB", file=sys.stderr, flush=True)
            results[name] = measure_set(name, source, edits, run_dir, options.repeat)
    finally:
        if results:
            print(f"Results: {save(results, info, started)}", file=sys.stderr)
        if not options.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    print(report(results, options.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
