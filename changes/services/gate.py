"""The metric gate: what CI measured on a change's head against the models
trained on the target.

For each model whose current version trained on this dataset, the metrics a
check reported for the change's head (for that model, or for any model when the
check names none) are compared with the model version's own, with the model's
tolerance (``STRATA_METRIC_TOLERANCE`` when it declares none). A regression
beyond tolerance makes the change "needs approval" — or fails it when the target
branch's protection says regressions block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from catalog.models import Dataset, Version
from changes.models import BranchProtection, Check
from changes.services.protection import Rule
from registry.domain.metrics import compare_metrics
from registry.models import ModelVersion
from registry.selectors import tolerance as default_tolerance

GATE_CHECK = "metric gate"


@dataclass(frozen=True, slots=True)
class GateResult:
    state: str
    summary: str
    metrics: dict[str, object] = field(default_factory=dict)


def models_trained_on(dataset: Dataset) -> list[ModelVersion]:
    """The newest version of every model that trained on a version of `dataset`."""
    pinned = (
        ModelVersion.objects.filter(pins__version__dataset=dataset, pins__evaluation=False)
        .distinct()
        .order_by("name", "-created")
    )
    newest: dict[str, ModelVersion] = {}
    for model in pinned:
        newest.setdefault(model.name, model)
    return list(newest.values())


def metric_gate(
    *, dataset: Dataset, target_head: Version, reported: Sequence[Check], rule: Rule
) -> GateResult | None:
    """The gate's verdict, or None when no reported metric concerns a model."""
    measured = [check for check in reported if check.metrics]
    if not measured:
        return None
    compared: dict[str, object] = {}
    regressions: list[str] = []
    for model in models_trained_on(dataset):
        baseline = {name: float(value) for name, value in (model.metrics or {}).items()}
        tol = model.tolerance if model.tolerance is not None else default_tolerance()
        for check in measured:
            if check.model and check.model != model.name:
                continue
            shared = {name: value for name, value in check.metrics.items() if name in baseline}
            for change in compare_metrics({k: baseline[k] for k in shared}, shared, tol):
                compared[f"{model.spec} {change.name}"] = {
                    "before": change.before,
                    "after": change.after,
                    "tolerance": tol,
                    "regressed": change.regressed,
                    "check": check.name,
                }
                if change.regressed:
                    regressions.append(
                        f"{model.spec} {change.name} {change.before:g} → {change.after:g}"
                        f" (tolerance {tol:g}, reported by {check.name})"
                    )
    if not compared:
        return None
    if not regressions:
        return GateResult(
            Check.State.PASSED, f"No model regresses: {len(compared)} metrics compared.", compared
        )
    verdict = (
        "blocks the merge" if rule.regression == BranchProtection.Regression.BLOCK else "needs an approver"
    )
    state = (
        Check.State.FAILED
        if rule.regression == BranchProtection.Regression.BLOCK
        else Check.State.NEEDS_APPROVAL
    )
    return GateResult(state, f"A regression {verdict}: " + "; ".join(regressions) + ".", compared)
