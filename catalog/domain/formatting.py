"""Small formatting helpers shared by the command line and the pages."""

from __future__ import annotations


def human_bytes(count: int | float) -> str:
    """1536 -> '1.5 KiB'. Binary units, one decimal, as `du -h` and DVC print them."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """12 -> '12 s'; 5400 -> '1 h 30 min'."""
    if seconds < 60:
        return f"{max(int(seconds), 1)} s"
    minutes = int(seconds // 60) + (1 if seconds % 60 else 0)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def about(seconds: float) -> str:
    """'under a minute' or 'about 4 h'."""
    return "under a minute" if seconds < 60 else f"about {human_duration(seconds)}"


def code_line(repo: str, ref: str) -> str:
    """('https://git.example.org/team/repo', '3f2a9c1') -> 'https://git.example.org/team/repo @ 3f2a9c1'."""
    return f"{repo} @ {ref}" if ref else repo
