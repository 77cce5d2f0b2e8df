"""`strata card`, `split` and `golden`: what a version says about itself, its
train/val/test split, and its sign-off, through the cards app's services."""

from __future__ import annotations

from typing import Any

from cards.services.cards import card_export, card_import, version_mark_golden
from cards.services.splits import split_make
from catalog import selectors
from catalog.errors import UserError
from ops.cli.common import Output, actor, nested, subcommand


def register(subparsers: Any) -> None:
    _register_split(subparsers)
    _register_card(subparsers)
    golden = subcommand(subparsers, "golden", help="mark a version golden", handler=handle_golden)
    golden.add_argument("spec", metavar="DATASET@REF")
    golden.add_argument("--override-reason", default="")
    golden.add_argument("--author")


def _register_split(subparsers: Any) -> None:
    split = subcommand(subparsers, "split", help="split a version into train/val/test", handler=handle_split)
    split.add_argument("spec", metavar="DATASET@REF")
    split.add_argument("--id-column", required=True)
    split.add_argument("--label-column", default=None)
    split.add_argument("--ratios", default="train=0.8,val=0.1,test=0.1")
    split.add_argument("--method", default="hash", choices=["hash", "random"])
    split.add_argument("--seed", type=int, default=42)
    split.add_argument("--stratify", action="store_true")
    split.add_argument("--branch", default=None, help="branch to commit on (default: main)")
    split.add_argument("--file", default=None, help="the table to split, when there are several")
    split.add_argument("--author")


def _register_card(subparsers: Any) -> None:
    card = subcommand(subparsers, "card", help="dataset cards: export and import", json_flag=False)
    actions = nested(card, "card_action")
    export = subcommand(actions, "export", help="write a card as README.md", handler=handle_card_export)
    export.add_argument("spec", metavar="DATASET@REF")
    export.add_argument("-o", "--output", default=None)
    imported = subcommand(actions, "import", help="import a README.md card", handler=handle_card_import)
    imported.add_argument("dataset")
    imported.add_argument("readme", metavar="README.md")
    imported.add_argument("--branch", default=None)
    imported.add_argument("--author")


def handle_split(out: Output, options: dict[str, Any]) -> None:
    dataset, source = selectors.resolve_spec(options["spec"])
    result = split_make(
        user=None,
        dataset=dataset,
        source=source,
        id_column=options["id_column"],
        ratios=options["ratios"],
        method=options["method"],
        seed=options["seed"],
        label_column=options["label_column"],
        stratify=options["stratify"],
        branch=options["branch"],
        file=options["file"],
        author=actor(options),
    )
    report = result.report
    version = result.version
    lines = [
        (
            f"Split {dataset.name}@{source.semver} into {dataset.name}@{version.semver}: version {version.id}"
            if result.created
            else f"No changes: {dataset.name}@{version.semver} already holds this split."
        )
    ]
    for name, size in report.sizes.items():
        labels = report.labels.get(name)
        shown = ", ".join(f"{label} {count:,}" for label, count in labels.items()) if labels else ""
        lines.append(f"  {name:<10} {size:>10,}" + (f"  ({shown})" if shown else ""))
    lines.append(
        f"  leakage: {len(report.leakage)} groups of identical examples across splits"
        if report.leakage
        else "  leakage: none"
    )
    out.emit(result.as_dict(), "\n".join(lines))


def handle_card_export(out: Output, options: dict[str, Any]) -> None:
    _, version = selectors.resolve_spec(options["spec"])
    text = card_export(version)
    if options["output"]:
        with open(options["output"], "w", encoding="utf-8") as handle:
            handle.write(text)
        out.write(f"Wrote the card of {version} to {options['output']}")
    else:
        out.write(text, ending="")


def handle_card_import(out: Output, options: dict[str, Any]) -> None:
    dataset = selectors.dataset_get(options["dataset"])
    try:
        with open(options["readme"], encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise UserError(f"cannot read {options['readme']}: {error.strerror}.") from None
    except UnicodeDecodeError:
        raise UserError(f"{options['readme']} is not UTF-8 text.") from None
    version = card_import(
        user=None, dataset=dataset, text=text, branch=options["branch"], author=actor(options)
    )
    out.emit(
        {"dataset": dataset.name, "version": version.id, "semver": version.semver},
        f"Imported the card into {dataset.name}@{version.semver}: version {version.id}",
    )


def handle_golden(out: Output, options: dict[str, Any]) -> None:
    _, version = selectors.resolve_spec(options["spec"])
    version = version_mark_golden(
        user=None, version=version, override_reason=options["override_reason"], author=actor(options)
    )
    out.emit(
        {
            "dataset": version.dataset.name,
            "version": version.id,
            "semver": version.semver,
            "golden": True,
        },
        f"Marked {version} golden",
    )
