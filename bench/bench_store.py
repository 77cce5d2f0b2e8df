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
- Most of that swing is memory, not disk: free memory is handed back to the host,
  and the first write into a handed-back page costs a fault (cp -r of 1 GiB takes
  0.3 s into memory already held, 2.5 s into memory handed back). A machine that
  keeps its memory is always in the first state, so before each timed step the
  free memory is topped up by reading a sparse file (clean page cache, dropped at
  no cost when anything needs the memory). `--no-fill` measures as the machine comes.
- Dirty pages are flushed (`sync`, untimed) before each timed step, so a step
  never pays for the previous step's writes.
- Each command runs under `/usr/bin/time` for its peak memory (max RSS).
- Other work on the machine (a test suite, say) distorts figures badly: a test
  suite's fsyncs slow the creation of 20,000 files five- to tenfold. Each step waits
  (a while) until the machine is quiet and runs at a raised CPU priority (nice -10,
  when run as root); the CPU time the rest of the machine used during the step is
  recorded, and a repetition in which some step shared the machine is kept in the
  JSON but measured again. Medians use the undisturbed repetitions.
- DVC lives in its own venv under bench/data/, never in the project's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import datagen

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
SETS_DIR = DATA_DIR / "sets"
RUNS_DIR = DATA_DIR / "runs"
CODE_DIR = DATA_DIR / "code"
RESULTS_DIR = BENCH_DIR / "results"
DVC_VENV = DATA_DIR / "venv-dvc"
DVC_BIN = DVC_VENV / "bin" / "dvc"
FILL_FILE = DATA_DIR / "memory-fill.sparse"
PYCACHE_DIR = DATA_DIR / "pycache"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
TIME_BIN = "/usr/bin/time"
MIB = 1024 * 1024

SET_NAMES = ("small", "large", "jsonl")
# A step is flagged as disturbed when other processes used more CPU during it than
# one core's worth of its wall time: of two cores, the step (at a raised priority)
# then no longer had one to itself. Kernel writeback of the step's own writes
# counts as "other" too, so the threshold is loose.
DISTURBED_FRACTION = 1.0
# The machine counts as quiet when everything else together has used less than
# this share of one core for QUIET_SECONDS in a row (a pause between two test runs
# is not quiet); a step waits for that at most QUIET_WAIT_SECONDS.
QUIET_CORES = 0.3
QUIET_SECONDS = 3
QUIET_WAIT_SECONDS = 60
# Measured commands run at this niceness when allowed (root), ahead of other work.
MEASURED_NICENESS = -10


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


def raise_priority() -> bool:
    """Run this process and every command it starts ahead of other work, if allowed
    (root). With autogroup scheduling (Linux's default) a nice value counts only
    within a session, so the session's group is raised too. Returns whether it was."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, MEASURED_NICENESS)
    except PermissionError:
        return False
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(MEASURED_NICENESS))
    return True


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


def _meminfo(field_name: str) -> int:
    """A /proc/meminfo figure, in bytes."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"/proc/meminfo has no {field_name}")


class MemoryFiller:
    """Keeps the machine's memory held, so writes land in pages it already has.

    Reading a sparse file fills the page cache with clean zero pages; the kernel
    drops them the moment anything else needs memory, so they take nothing from
    the tools measured. The host takes back pages that stay unused, so the fill
    is topped up before every step. Does nothing until started.
    """

    LOW_WATER = 400 * MIB  # the kernel itself keeps about 200 MiB free

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._buffer = bytearray(4 * MIB)

    def start(self) -> None:
        with open(self.path, "wb") as handle:
            handle.truncate(_meminfo("MemTotal"))
        self._handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 (open for the whole run)
        self.top_up()

    def top_up(self) -> None:
        if self._handle is None:
            return
        # Pages still cached are only copied; pages handed back are faulted in again.
        for _ in range(_meminfo("MemTotal") // len(self._buffer)):
            if _meminfo("MemFree") <= self.LOW_WATER:
                return
            if not self._handle.readinto(self._buffer):
                self._handle.seek(0)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)


MEMORY = MemoryFiller(FILL_FILE)


def wait_until_quiet() -> None:
    """Wait (a while at most) until nothing else on the machine is busy."""
    deadline = time.monotonic() + QUIET_WAIT_SECONDS
    announced = False
    quiet_for = 0
    while quiet_for < QUIET_SECONDS and time.monotonic() < deadline:
        before = _busy_cpu_seconds()
        time.sleep(1.0)
        quiet_for = quiet_for + 1 if _busy_cpu_seconds() - before < QUIET_CORES else 0
        if not quiet_for and not announced:
            print("    (waiting for other work on the machine to finish)", file=sys.stderr, flush=True)
            announced = True


def settle() -> None:
    """Prepare a timed step: hold the memory (unless --no-fill), flush dirty pages
    so the step does not pay for earlier writes, and wait for a quiet machine."""
    MEMORY.top_up()
    os.sync()
    wait_until_quiet()


def python_env(base: dict[str, str]) -> dict[str, str]:
    """Run Python tools with their bytecode cached, as an installed tool runs; the
    cache goes under bench/data/ so nothing is written into the project."""
    env = {key: value for key, value in base.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    return env


def warm(*paths: Path) -> None:
    """Read every file twice, so the sources sit in the page cache (on its active
    list, which the memory fill does not push out) and no tool reads them from disk."""
    for _ in range(2):
        for path in paths:
            for directory, _, files in os.walk(path):
                for name in files:
                    with open(os.path.join(directory, name), "rb") as handle:
                        while handle.read(8 * MIB):
                            pass


def move_aside(path: Path, aside: Path) -> None:
    """Take `path` out of the way without deleting it (deleting is slow here and
    slows the writes after it); the run folder is removed at the end."""
    aside.mkdir(parents=True, exist_ok=True)
    path.rename(aside / f"{path.name}-{time.monotonic_ns()}")


# -- the tools ------------------------------------------------------------------------


class Strata:
    """Strata's command line on the embedded defaults, in a private var folder.

    `code_dir` is the Strata tree that runs: this checkout, or an exported commit
    (--commit), which stays fixed while the checkout changes under a long run.
    """

    code_dir = PROJECT_DIR

    def __init__(self, var_dir: Path) -> None:
        self.env = {
            key: value
            for key, value in python_env(dict(os.environ)).items()
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
        quiet([sys.executable, "manage.py", "migrate", "-v0"], cwd=self.code_dir, env=self.env)

    def manage(self, *args: str | Path) -> Measurement:
        settle()
        return run([sys.executable, "manage.py", "strata", *args], cwd=self.code_dir, env=self.env)

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
        self.env = python_env(dict(os.environ, DVC_NO_ANALYTICS="1"))
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

    @property
    def disturbed(self) -> bool:
        return any(measurement.disturbed for measurement in self.steps.values())

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
    name: str,
    source: Path,
    edits: dict[str, Path],
    run_dir: Path,
    repeat: int,
    repetitions: list[Repetition],
) -> None:
    """Measure one data set until `repeat` repetitions ran undisturbed (with at
    most two extra attempts), rotating which tool goes first. Appends to
    `repetitions` as it goes, so an interrupted run still saves what it measured."""
    order = list(MEASURERS)
    for attempt in range(repeat + 2):
        if sum(not rep.disturbed for rep in repetitions) >= repeat:
            break
        rep = Repetition(run_dir / name / f"rep-{attempt + 1}")
        rep.folder.mkdir(parents=True)
        rotated = order[attempt % len(order) :] + order[: attempt % len(order)]
        print(f"  {name} repetition {attempt + 1} ({', '.join(rotated)})", file=sys.stderr, flush=True)
        for tool in rotated:
            MEASURERS[tool](rep, source, edits)
        repetitions.append(rep)


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


def usable(repetitions: list[Repetition]) -> list[Repetition]:
    """The undisturbed repetitions, or all of them if every one was disturbed."""
    return [rep for rep in repetitions if not rep.disturbed] or repetitions


def median_of(repetitions: list[Repetition], *steps: str) -> float:
    """Median over usable repetitions of the summed wall time of `steps`."""
    return statistics.median(sum(rep.steps[step].seconds for step in steps) for rep in usable(repetitions))


def median_figure(repetitions: list[Repetition], figure: str) -> float:
    return statistics.median(rep.figures[figure] for rep in usable(repetitions))


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


def summarise(name: str, repetitions: list[Repetition]) -> list[Row]:
    """The median rows of one data set."""
    disturbed = all(rep.disturbed for rep in repetitions)

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
            disturbed,
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
    rows.append(Row(name, "`cp -r` (floor)", copy, None, disturbed=disturbed))
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


def _output(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_DIR).stdout.strip()


def export_commit(revision: str) -> Path:
    """A copy of Strata at `revision` under bench/data/code/ (made once), so a run
    measures one commit whatever happens to the checkout meanwhile."""
    commit = _output("git", "rev-parse", "--verify", f"{revision}^{{commit}}")
    if not commit:
        raise BenchError(f"{revision} is not a commit of this repository")
    tree = CODE_DIR / commit
    if not tree.exists():
        partial = CODE_DIR / f"{commit}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=PROJECT_DIR, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", partial], input=archive.stdout, check=True)
        partial.rename(tree)
    return tree


def code_state() -> dict[str, object]:
    """Which Strata code is measured: an exported commit, or this checkout's commit
    and a fingerprint of its uncommitted changes (taken at the start and the end,
    as the checkout may change meanwhile)."""
    if Strata.code_dir != PROJECT_DIR:
        return {"commit": Strata.code_dir.name, "uncommitted files": []}
    return {
        "commit": _output("git", "rev-parse", "HEAD"),
        "uncommitted diff blake2b": hashlib.blake2b(_output("git", "diff", "HEAD").encode()).hexdigest()[:16],
        "uncommitted files": _output("git", "status", "--porcelain", "--untracked-files=no").splitlines(),
    }


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": _output("nproc"),
        "cpu": cpu_model,
        "free -h": _output("free", "-h"),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def save(results: dict[str, list[Repetition]], info: dict[str, object], started: datetime.datetime) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"store-{started:%Y%m%dT%H%M%SZ}-{'-'.join(results)}.json"
    code_at_end = code_state()
    payload = {
        **info,
        "code at end": code_at_end,
        "code changed during the run": code_at_end != info["code at start"],
        "started": started.isoformat(),
        "sets": {
            name: {
                "summary": [asdict(row) | {"ratio": row.ratio} for row in summarise(name, repetitions)],
                "repetitions": [
                    {
                        "disturbed": rep.disturbed,
                        "steps": {step: m.as_dict() for step, m in rep.steps.items()},
                        "figures": rep.figures,
                    }
                    for rep in repetitions
                ],
            }
            for name, repetitions in results.items()
        },
        "targets": [asdict(check) for check in targets(results)],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def report(results: dict[str, list[Repetition]]) -> str:
    rows = [row for name, repetitions in results.items() for row in summarise(name, repetitions)]
    counts = ", ".join(
        f"{name} {len(usable(repetitions))} of {len(repetitions)}" for name, repetitions in results.items()
    )
    parts = [
        f"Medians of the undisturbed repetitions ({counts}). "
        "† every repetition shared the machine with other work.",
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
    parser.add_argument(
        "--commit", metavar="REV", help="measure this commit (exported with git archive), not the checkout"
    )
    parser.add_argument(
        "--no-fill",
        action="store_true",
        help="do not hold the memory before each step (see the module docstring)",
    )
    options = parser.parse_args(argv)
    # A background run ignores Ctrl-C; make `kill PID` clean up (finally below) too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not Path(TIME_BIN).exists():
        print(f"{TIME_BIN} is missing: install it with `apt-get install -y time`.", file=sys.stderr)
        return 2

    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    names = options.only or list(SET_NAMES)
    if options.commit:
        Strata.code_dir = export_commit(options.commit)
    info = machine() | {
        "code at start": code_state(),
        "dvc": ensure_dvc(),
        "repeat": options.repeat,
        "memory held": not options.no_fill,
        "niceness of measured commands": MEASURED_NICENESS if raise_priority() else 0,
    }
    sets = prepare_sets(names)
    run_dir = RUNS_DIR / f"{started:%Y%m%dT%H%M%SZ}"
    results: dict[str, list[Repetition]] = {}
    if not options.no_fill:
        MEMORY.start()
    try:
        for name in names:
            source, edits = sets[name]
            print(f"{name}: {datagen.tree_bytes(source) / MIB:,.0f} MiB", file=sys.stderr, flush=True)
            warm(source, *edits.values())
            results[name] = []
            measure_set(name, source, edits, run_dir, options.repeat, results[name])
    finally:
        # An interrupted run keeps the sets it finished at least one repetition of.
        results = {name: repetitions for name, repetitions in results.items() if repetitions}
        if results:
            print(f"Results: {save(results, info, started)}", file=sys.stderr)
        MEMORY.stop()
        if not options.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
