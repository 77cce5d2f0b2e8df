"""`strata cost` and `strata retention`: what the store costs, and the retention
runs that tier and collect it, through the lifecycle app's services.

A retention run takes the same road as on the dashboard: `retention_plan` records
it (approved at once unless its sweep needs an approver), `retention_approve`
releases a waiting one. Where the dashboard then queues the apply on a worker,
the command applies it here and now with `retention_advance`, the function the
worker's task calls, and says so.
"""

from __future__ import annotations

from typing import Any

from catalog.domain.formatting import human_bytes
from catalog.errors import UserError
from lifecycle.models import RetentionRun
from lifecycle.services.costs import CostReport, cost_report
from lifecycle.services.retention import retention_advance, retention_approve, retention_plan
from ops.cli.common import Output, count, subcommand

# Said after a run applied by the command rather than queued on a worker.
APPLIED_HERE = "  applied by this command, as a worker applies a run approved on the dashboard"


def register(subparsers: Any) -> None:
    subcommand(
        subparsers,
        "cost",
        help="bytes and $/month per dataset, branch and tier; retention status",
        handler=handle_cost,
    )
    retention = subcommand(
        subparsers, "retention", help="tiering and garbage collection runs", handler=handle_retention
    )
    retention.add_argument(
        "retention_action",
        choices=["plan", "run", "approve", "list"],
        help="plan: record a run; run: plan and apply it unless it needs approval;"
        " approve RUN_ID: approve a waiting run and apply it; list: the last 20 runs",
    )
    retention.add_argument("run_id", nargs="?", type=int, help="the run to approve")


def handle_cost(out: Output, options: dict[str, Any]) -> None:
    report = cost_report()
    data: dict[str, Any] = report.as_dict()
    lines = [
        f"Storage as of {report.now:%Y-%m-%d}: logical {human_bytes(report.logical_bytes)}, "
        f"stored {human_bytes(report.stored_bytes)}, "
        f"dedup and compression save {human_bytes(max(report.logical_bytes - report.stored_bytes, 0))}.",
        "",
        f"{'tier':<6} {'stored':>10} {'billed':>10} {'$/month':>10}",
    ]
    for tier, row in data["tiers"].items():
        lines.append(
            f"{tier:<6} {human_bytes(row['stored_bytes']):>10} {human_bytes(row['billed_bytes']):>10}"
            f" {row['monthly_dollars']:>10}"
        )
    lines += [
        f"{'total':<6} {'':>10} {'':>10} {data['monthly_dollars']:>10}",
        f"minimum-size charges ${data['minimum_size_dollars']}/month; "
        f"minimum-duration charges due now ${data['minimum_duration_dollars']}",
        f"in 30 days ${data['projections']['30_days']}/month, in 90 days ${data['projections']['90_days']}/month"
        " under the current policies",
        "",
    ]
    lines += _usage_lines(report)
    out.emit(data, "\n".join(lines))


def _usage_lines(report: CostReport) -> list[str]:
    lines = []
    for title, rows in (("dataset", report.datasets), ("branch", report.branches)):
        lines.append(f"{title:<28} {'logical':>10} {'stored':>10} {'saved':>10} {'$/month':>10}")
        for usage in rows:
            lines.append(
                f"{usage.name:<28} {human_bytes(usage.logical_bytes):>10} {human_bytes(usage.stored_bytes):>10}"
                f" {human_bytes(usage.saved_bytes):>10} {usage.as_dict()['monthly_dollars']:>10}"
            )
        lines.append("")
    for status in report.versions:
        why = "; ".join(status.protected_because) or "; ".join(status.kept_because)
        expires = f", expires on {status.expires_on:%Y-%m-%d}" if status.expires_on else ""
        restore = f", restorable in {status.restorable_in}" if status.restorable_in else ""
        lines.append(f"{status.label:<28} {status.tier:<5} {why}{expires}{restore}")
    return lines


def handle_retention(out: Output, options: dict[str, Any]) -> None:
    action = options["retention_action"]
    if action == "list":
        _retention_list(out)
        return
    applied = False
    if action == "approve":
        run = retention_approve(user=None, run=_waiting_run(options["run_id"]))
        applied = True
    else:
        run = retention_plan(trigger="manual")
        applied = action == "run" and run.state == RetentionRun.State.APPROVED
    if applied:
        # Here and now rather than on a worker: the operator at the server waits for it.
        run = retention_advance(run_id=run.pk)
    report = run.report
    freed = ", ".join(f"{tier} {human_bytes(size)}" for tier, size in report.get("freed_bytes", {}).items())
    out.emit(
        {"id": run.pk, "state": run.state, "report": report, "error": run.error},
        f"retention run #{run.pk}: {run.get_state_display()}\n"
        f"  {count(report.get('versions_expired', 0), 'version expires', 'versions expire')}, "
        f"{count(report.get('moves', 0), 'pack moves tier', 'packs move tier')}, "
        f"{report.get('repacks', 0)} repacked, {report.get('deletions', 0)} deleted ({freed} freed); "
        f"early-deletion charges ${report.get('early_deletion_charges', '0.00')}"
        + (f"\n  error: {run.error}" if run.error else "")
        + (f"\n{APPLIED_HERE}" if applied else ""),
    )


def _waiting_run(run_id: int | None) -> RetentionRun:
    if not run_id:
        raise UserError("say which run to approve: strata retention approve RUN_ID.")
    run = RetentionRun.objects.filter(pk=run_id).first()
    if run is None:
        raise UserError(f"there is no retention run {run_id}.")
    return run


def _retention_list(out: Output) -> None:
    runs = list(RetentionRun.objects.all()[:20])
    payload = [{"id": r.pk, "state": r.state, "created": r.created, "report": r.report} for r in runs]
    text = "\n".join(
        f"#{r.pk} {r.created:%Y-%m-%d %H:%M} {r.get_state_display()} "
        f"({count(r.report.get('versions_expired', 0), 'version expires', 'versions expire')}, "
        f"{count(r.report.get('deletions', 0), 'pack deleted', 'packs deleted')})"
        for r in runs
    )
    out.emit(payload, text or "no retention runs yet")
