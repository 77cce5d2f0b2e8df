"""Model metrics: which way is better, and what counts as a regression.

Plain Python, no Django. A metric whose name says it measures a loss or an
error (``loss``, ``val_loss``, ``error_rate``, ``mae``, ``rmse``, ``mse``,
``wer``, ``perplexity``…) is lower-is-better; every other metric (``auc``,
``accuracy``, ``f1``, ``precision``…) is higher-is-better. A new version
regresses on a metric when it is worse than its predecessor's value by more than
an absolute tolerance (the ``STRATA_METRIC_TOLERANCE`` setting, 0.01 by default).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HIGHER, LOWER = "higher", "lower"
DEFAULT_TOLERANCE = 0.01
# Names (or words of names) of metrics where less is better.
_LOWER_WORDS = frozenset(
    {
        "loss",
        "logloss",
        "error",
        "err",
        "mae",
        "mse",
        "rmse",
        "msle",
        "rmsle",
        "mape",
        "smape",
        "wer",
        "cer",
        "perplexity",
        "ppl",
        "fpr",
        "fnr",
        "brier",
        "latency",
        "eer",
    }
)
_WORD = re.compile(r"[a-z0-9]+")
# Floating-point slack, so a drop of exactly the tolerance is not flagged.
_EPSILON = 1e-9


def better_direction(name: str) -> str:
    """'lower' for loss- and error-like metric names, else 'higher'."""
    words = _WORD.findall(name.lower())
    for word in words:
        if word in _LOWER_WORDS or word.endswith("loss") or word.endswith("error"):
            return LOWER
    return HIGHER


def check_metrics(metrics: Any) -> dict[str, float]:
    """Metrics as name → finite number; ValueError with one sentence otherwise."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ValueError('metrics must be an object of name → number, e.g. {"auc": 0.91}.')
    checked: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ValueError(f"{name!r} is not a metric name: use 1 to 100 characters.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"metric {name!r} must be a number, not {value!r}.")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValueError(f"metric {name!r} must be a finite number.")
        checked[name.strip()] = number
    return checked


@dataclass(frozen=True, slots=True)
class MetricChange:
    """One metric on both sides of a comparison."""

    name: str
    before: float | None
    after: float | None
    better: str  # HIGHER or LOWER
    tolerance: float

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def improved(self) -> bool:
        delta = self.delta
        if delta is None or abs(delta) <= _EPSILON:
            return False
        return delta > 0 if self.better == HIGHER else delta < 0

    @property
    def worse_by(self) -> float:
        """How much worse `after` is than `before` (0 when not worse)."""
        delta = self.delta
        if delta is None:
            return 0.0
        return max(0.0, -delta if self.better == HIGHER else delta)

    @property
    def regressed(self) -> bool:
        return self.worse_by > self.tolerance + _EPSILON

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            "before": self.before,
            "after": self.after,
            "delta": self.delta,
            "better": self.better,
            "tolerance": self.tolerance,
            "regressed": self.regressed,
        }


def compare_metrics(
    before: Mapping[str, float], after: Mapping[str, float], tolerance: float = DEFAULT_TOLERANCE
) -> list[MetricChange]:
    """Every metric of either side, in name order, with its change."""
    names = sorted(set(before) | set(after))
    return [
        MetricChange(name, before.get(name), after.get(name), better_direction(name), tolerance)
        for name in names
    ]


def regressions(
    before: Mapping[str, float], after: Mapping[str, float], tolerance: float = DEFAULT_TOLERANCE
) -> list[MetricChange]:
    """The metrics on both sides that got worse by more than `tolerance`."""
    return [change for change in compare_metrics(before, after, tolerance) if change.regressed]
