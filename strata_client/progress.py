"""A one-line progress bar on stderr, drawn only when stderr is a terminal, so logs
of pipelines stay clean. It follows the store's ProgressSink protocol."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class TerminalProgress:
    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.files = self.total_files = 0
        self.nbytes = self.total_bytes = 0
        self.started = self.drawn = 0.0

    def start(self, files: int, nbytes: int) -> None:
        self.files = self.nbytes = 0
        self.total_files, self.total_bytes = files, nbytes
        self.started = time.monotonic()

    def advance(self, files: int, nbytes: int) -> None:
        self.files += files
        self.nbytes += nbytes
        now = time.monotonic()
        if self.enabled and now - self.drawn > 0.1 and now - self.started > 0.3:
            self.drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(1.0, self.nbytes / self.total_bytes) if self.total_bytes else 1.0
        filled = int(fraction * 30)
        rate = self.nbytes / max(now - self.started, 1e-6)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} "
            f"{self.files:,}/{self.total_files:,} files {human_bytes(self.nbytes)} {human_bytes(rate)}/s "
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.drawn:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = 0.0
