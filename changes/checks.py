"""The built-in checks of a change request: what Strata itself says about merging
one branch's head into another's before anyone approves it.

``builtin_checks`` runs them all, in the order of ``BUILTIN_CHECKS``, on the
source head, the target head and the merge dry run's result
(``catalog.models.Merge.result``, ``MergeOutcome.as_dict``), and returns one
``CheckResult`` each. It reads rows, trees, cards and table schemas only — a
table's first rows or its Parquet footer, never a whole table — so it is cheap
enough to run again on every new head. A check never raises for bad data: a
table or card that cannot be read is a failed check that says so in a sentence,
and a check that breaks for any other reason is failed with a reference to the
log, so the others still stand.

The checks take plain versions and dicts, not the change request's rows: the
caller (a worker) records the results as ``Check`` rows.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml
import zstandard

from cards.domain.cards import CardError, Completeness, completeness
from cards.services.cards import SPLIT_REPORT_PATH, card_of, golden_minimum
from catalog.domain.tabular import TableError, is_tabular, needs_whole_file
from catalog.errors import NotFound, StrataError
from catalog.models import Dataset, Stage, Version
from catalog.selectors.changes import version_schema
from catalog.selectors.exports import file_stream, find_entry
from catalog.services.commits import next_semver
from catalog.store import walk_tree
from strata_store.errors import StoreError

logger = logging.getLogger(__name__)

# The states a built-in check ends in: the values of ``changes.models.Check.State``.
PASSED, FAILED, NEEDS_APPROVAL = "passed", "failed", "needs_approval"

MERGE = "merge"
SCHEMA_CONTRACT = "schema contract"
SPLIT_LEAKAGE = "split leakage"
GOLDEN_RULE = "golden rule"
SEMANTIC_VERSION = "semantic version"
CARD_COMPLETENESS = "card completeness"
BUILTIN_CHECKS: tuple[str, ...] = (
    MERGE,
    SCHEMA_CONTRACT,
    SPLIT_LEAKAGE,
    GOLDEN_RULE,
    SEMANTIC_VERSION,
    CARD_COMPLETENESS,
)

# The card completeness (0–100, ``cards.domain.cards.completeness``) the source
# head's card must reach, by the stage of the target head: raw data may go without
# a card, and the further along the data is, the more its card must say. A split,
# what models train on, asks as much as golden does by default. A stage not listed
# (``other``) asks nothing.
CARD_MINIMUM_BY_STAGE: dict[str, int] = {
    Stage.RAW: 0,
    Stage.CLEANED: 40,
    Stage.LABELLED: 60,
    Stage.SPLIT: 80,
}

# Tables one schema contract check reads (each read is a schema read: a text
# table's first rows, a Parquet file's footer); declared tables beyond are named
# as not checked.
MAX_CONTRACT_TABLES = 50
# The split report is small (parameters, sizes, leakage groups); one larger than
# this is not read here.
MAX_SPLIT_REPORT_BYTES = 16 * 1024 * 1024
# How many conflicts, reasons, columns or card items a summary names.
NAMED = 3

# What reading stored data can raise when the data is bad or gone.
_READ_ERRORS = (TableError, StrataError, StoreError, zstandard.ZstdError, OSError)
# What reading a stored card can raise when it is malformed.
_CARD_ERRORS = (CardError, yaml.YAMLError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class CheckResult:
    """One built-in check's verdict on a change, in words a steward understands."""

    name: str
    state: str  # PASSED, FAILED or NEEDS_APPROVAL
    summary: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Change:
    """What the checks look at, with the facts more than one of them reads
    worked out once."""

    dataset: Dataset
    head: Version
    target_head: Version
    dry_run: dict[str, Any] | None

    @property
    def target(self) -> str:
        """The target branch by name, or the target head when the dry run is missing."""
        name = (self.dry_run or {}).get("target")
        return str(name) if name else f"{self.dataset.name}@{self.target_head.semver}"

    @property
    def target_version(self) -> str:
        """The target head, named with its branch when the dry run gives it."""
        name = (self.dry_run or {}).get("target")
        return f"{name} ({self.target_head.semver})" if name else self.target

    @property
    def source(self) -> str:
        """The source head, named with its branch when the dry run gives it."""
        name = (self.dry_run or {}).get("source")
        return f"{name} ({self.head.semver})" if name else f"{self.dataset.name}@{self.head.semver}"

    @cached_property
    def split_report(self) -> dict[str, Any] | None:
        """The source head's split report, None when it holds no split. A report
        that cannot be read raises one of `_READ_ERRORS` with a sentence."""
        try:
            entry = find_entry(self.head, SPLIT_REPORT_PATH)
        except NotFound:
            return None
        if not entry.is_file:
            return None
        if entry.size > MAX_SPLIT_REPORT_BYTES:
            raise TableError(f"the split report {SPLIT_REPORT_PATH} is too large to read here.")
        data = b"".join(file_stream(self.head, SPLIT_REPORT_PATH).chunks)
        try:
            report = json.loads(data)
        except ValueError:
            raise TableError(f"the split report {SPLIT_REPORT_PATH} is not valid JSON.") from None
        if not isinstance(report, dict) or not isinstance(report.get("leakage") or [], list):
            raise TableError(f"the split report {SPLIT_REPORT_PATH} is not a split report.")
        return report

    @cached_property
    def head_card(self) -> Completeness:
        """How complete the source head's card is (raises one of `_CARD_ERRORS`)."""
        return completeness(card_of(self.head))

    @cached_property
    def head_tables(self) -> list[str]:
        """Every table of the source head (a walk of its trees; no data is read)."""
        return [
            item.path for item in walk_tree(self.head.tree_id) if item.entry.is_file and is_tabular(item.path)
        ]


def builtin_checks(
    *, dataset: Dataset, head: Version, target_head: Version, dry_run: dict[str, Any] | None
) -> list[CheckResult]:
    """Run every built-in check on merging `head` (the source branch's head) into
    `target_head`, given the merge dry run's result (None if the dry run failed).

    Returns one result per name of `BUILTIN_CHECKS`, in that order. Never raises
    for bad data."""
    change = _Change(dataset, head, target_head, dry_run)
    return [_run(name, check, change) for name, check in _CHECKS]


def _run(name: str, check: Callable[[_Change], CheckResult], change: _Change) -> CheckResult:
    """One check; a failure of its own becomes a failed result with a log reference,
    so a worker always records every check."""
    try:
        return check(change)
    except Exception:
        reference = uuid.uuid4().hex[:12]
        logger.exception(
            "the %s check failed on version %s of %s (reference %s)",
            name,
            change.head.id,
            change.dataset.name,
            reference,
        )
        return CheckResult(
            name, FAILED, f"The check could not run; something went wrong, reference {reference}."
        )


# -- merge ------------------------------------------------------------------------------


def _merge_check(change: _Change) -> CheckResult:
    """The dry run merges cleanly: no conflict left for a person to settle."""
    dry_run = change.dry_run
    if dry_run is None or "conflict_count" not in dry_run:
        return CheckResult(
            MERGE,
            FAILED,
            f"The merge dry run of {change.source} into {change.target} failed, so whether it merges"
            " cleanly is not known; run the dry run again.",
        )
    if dry_run.get("up_to_date"):
        return CheckResult(
            MERGE, PASSED, f"Nothing to merge: {change.target} already holds every change of {change.source}."
        )
    count = int(dry_run.get("conflict_count") or 0)
    if not count:
        return CheckResult(
            MERGE, PASSED, f"{change.source} merges into {change.target} without conflicts.", {"conflicts": 0}
        )
    conflicts = [c for c in dry_run.get("conflicts") or [] if isinstance(c, dict)]
    named = _listing([_conflict_name(c) for c in conflicts[:NAMED]], count)
    return CheckResult(
        MERGE,
        FAILED,
        f"The merge into {change.target} has {_plural(count, 'conflict')}: {named}."
        " Settle them on the source branch, or choose a merge strategy.",
        {"conflicts": float(count)},
    )


def _conflict_name(conflict: dict[str, Any]) -> str:
    """A conflict in a few words: its path, and for a row its key and column."""
    name = str(conflict.get("path") or "?")
    if conflict.get("key") is not None:
        name += f" key {conflict['key']}"
        if conflict.get("column"):
            name += f" column {conflict['column']}"
    return name


# -- schema contract --------------------------------------------------------------------


class _ContractError(ValueError):
    """A schema contract written so that it cannot be read; the message says where."""


@dataclass(frozen=True)
class _Declared:
    """Columns a card promises, and for which tables: exact paths or Hugging Face
    ``data_files`` patterns, or none for every table of the dataset."""

    paths: tuple[str, ...]
    columns: dict[str, str | None]  # column -> declared type (None: only that it is there)


# Hugging Face ``Value`` dtype names that are not Arrow's own -> the Arrow type
# names ``catalog.domain.tabular.read_schema`` reports (``str(pyarrow type)``).
# Every other name (string, int64, bool, ``timestamp[s]``) is the same in both.
_ARROW_NAMES = {
    "boolean": "bool",
    "float16": "halffloat",
    "float32": "float",
    "float64": "double",
    "str": "string",
    "utf8": "string",
    "large_utf8": "large_string",
    "date32": "date32[day]",
    "date64": "date64[ms]",
}
_INTEGERS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOATS = {"halffloat", "float", "double"}


def arrow_type_name(declared: str) -> str:
    """The Arrow type name of a declared column type (a Hugging Face dtype or an
    Arrow name)."""
    name = declared.strip().lower()
    return _ARROW_NAMES.get(name, name)


def _family(arrow_name: str) -> str:
    if arrow_name in ("string", "large_string", "string_view"):
        return "string"
    if arrow_name in ("binary", "large_binary", "binary_view"):
        return "binary"
    if arrow_name in _INTEGERS:
        return "integer"
    if arrow_name in _FLOATS:
        return "float"
    return arrow_name


def type_holds(declared: str, found: str, *, inferred: bool) -> bool:
    """Whether a column read as `found` keeps a declared type.

    A string is a string however wide its offsets. A text table (CSV, TSV, JSON
    Lines) has no types of its own: Arrow infers the widest one from its first rows,
    so there any integer width keeps any other, integers keep a float column, and a
    column with no value in those rows (``null``) keeps any type. Parquet stores its
    types, so there they must be the ones declared."""
    wanted, found_family = arrow_type_name(declared), _family(found)
    if wanted == found:
        return True
    if _family(wanted) == found_family and found_family in ("string", "binary"):
        return True
    if not inferred:
        return False
    if found == "null":
        return True
    if _family(wanted) == found_family and found_family in ("integer", "float"):
        return True
    return _family(wanted) == "float" and found_family == "integer"


def _schema_contract(metadata: dict[str, Any]) -> list[_Declared]:
    """The schema contract of a card's metadata ([] when it declares none).

    Two ways to declare it: Strata's ``schema: {PATH: {column: type}}``, and the
    Hugging Face ``dataset_info`` (one mapping, or a list, one per config) whose
    ``features`` list names and dtypes; its tables are its own ``data_files`` (or
    ``path``), else the ``data_files`` of the entry of ``configs`` its
    ``config_name`` (or ``config``) names, else every table. Raises _ContractError
    for a contract that cannot be read."""
    declared: list[_Declared] = []
    schema = metadata.get("schema")
    if schema is not None:
        if not isinstance(schema, dict):
            raise _ContractError("schema must map each table's path to its columns and types")
        for path, columns in schema.items():
            if not isinstance(columns, dict) or not columns:
                raise _ContractError(f"schema of {path} must map column names to types")
            declared.append(
                _Declared(
                    (str(path).strip("/"),), {str(name): _type_text(t, name) for name, t in columns.items()}
                )
            )
    infos = metadata.get("dataset_info")
    if infos is not None:
        for info in infos if isinstance(infos, list) else [infos]:
            if not isinstance(info, dict):
                raise _ContractError("dataset_info must be a mapping, or a list of them")
            if "features" not in info:
                continue
            declared.append(
                _Declared(_info_paths(info, metadata.get("configs")), _features(info["features"]))
            )
    return declared


def _type_text(value: Any, column: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _ContractError(f"the type of column {column} must be a type name such as string or int64")
    return value


def _features(features: Any) -> dict[str, str | None]:
    """Hugging Face features: a list of ``{name, dtype}`` (or a mapping of name to
    dtype). A feature that is not a plain value (a class label, a list, a struct) is
    checked only for being there."""
    if isinstance(features, dict):
        features = [{"name": name, "dtype": dtype} for name, dtype in features.items()]
    if not isinstance(features, list) or not features:
        raise _ContractError("dataset_info.features must list the columns, each with a name and a dtype")
    columns: dict[str, str | None] = {}
    for feature in features:
        if not isinstance(feature, dict) or not feature.get("name"):
            raise _ContractError("each of dataset_info.features needs a name")
        dtype = feature.get("dtype")
        columns[str(feature["name"])] = dtype if isinstance(dtype, str) and dtype.strip() else None
    return columns


def _info_paths(info: dict[str, Any], configs: Any) -> tuple[str, ...]:
    own = info.get("data_files", info.get("path"))
    if own is not None:
        return _data_files(own)
    name = info.get("config_name", info.get("config"))
    entries = [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []
    if name is None:
        entries = [c for c in entries if c.get("default") or c.get("config_name") == "default"] or (
            entries if len(entries) == 1 else []
        )
    else:
        entries = [c for c in entries if c.get("config_name") == name]
    if not entries or entries[0].get("data_files") is None:
        return ()
    return _data_files(entries[0]["data_files"])


def _data_files(value: Any) -> tuple[str, ...]:
    """Hugging Face ``data_files``: a path, a list of paths or of ``{split, path}``,
    or a mapping of split to path(s)."""
    items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
    paths: list[str] = []
    for item in items:
        item = item.get("path") if isinstance(item, dict) else item
        for path in item if isinstance(item, list) else [item]:
            if not isinstance(path, str) or not path.strip("/"):
                raise _ContractError("data_files must name paths of the dataset")
            paths.append(path.strip("/"))
    return tuple(paths)


def _is_pattern(path: str) -> bool:
    return any(mark in path for mark in "*?[")


def _schema_contract_check(change: _Change) -> CheckResult:
    """The columns and types the target's card declares still hold in the source
    head's tables; a column added is fine."""
    try:
        metadata = card_of(change.target_head).metadata
        contract = _schema_contract(metadata if isinstance(metadata, dict) else {})
    except _ContractError as error:
        return CheckResult(
            SCHEMA_CONTRACT, FAILED, f"The schema contract on {change.target} cannot be read: {error}."
        )
    except _CARD_ERRORS:
        return CheckResult(SCHEMA_CONTRACT, FAILED, f"The card of {change.target} cannot be read.")
    if not contract:
        return CheckResult(SCHEMA_CONTRACT, PASSED, f"no schema contract declared on {change.target}")

    tables = _contract_tables(change, contract)
    broken: list[str] = []
    added: list[str] = []
    absent = [path for path, columns in tables.items() if columns is None]
    present = {path: columns for path, columns in tables.items() if columns is not None}
    checked = 0
    for path, columns in list(present.items())[:MAX_CONTRACT_TABLES]:
        try:
            found = version_schema(change.head, path)
        except NotFound:
            absent.append(path)
            continue
        except _READ_ERRORS as error:
            broken.append(_unreadable(path, error))
            continue
        checked += 1
        inferred = not needs_whole_file(path)
        for column, declared in columns.items():
            if column not in found:
                broken.append(f"{path} has no column {column}" + (f" ({declared})" if declared else ""))
            elif declared is not None and not type_holds(declared, found[column], inferred=inferred):
                broken.append(f"{path} column {column} is {found[column]}, declared {declared}")
        added += [f"{path} {column}" for column in found if column not in columns]
    unchecked = max(0, len(present) - MAX_CONTRACT_TABLES)

    metrics = {"tables": float(checked), "violations": float(len(broken))}
    if broken:
        return CheckResult(
            SCHEMA_CONTRACT,
            FAILED,
            f"The change breaks the schema contract on {change.target}: {_listing(broken[:NAMED], len(broken), '; ')}.",
            metrics,
        )
    summary = f"The schema contract on {change.target} holds in {_plural(checked, 'declared table')} of {change.source}."
    if added:
        summary += f" New columns: {_listing(added[:NAMED], len(added))}."
    if absent:
        summary += f" Not in the source, so not checked: {_listing(sorted(absent)[:NAMED], len(absent))}."
    if unchecked:
        summary += f" {_plural(unchecked, 'more declared table')} not read."
    return CheckResult(SCHEMA_CONTRACT, PASSED, summary, metrics)


def _unreadable(path: str, error: Exception) -> str:
    """A table that cannot be read, in a few words: its path and the first sentence
    of the reason."""
    detail = _first_sentence(str(error))
    prefix = f"cannot read {path} as a table: "
    if detail.startswith(prefix):
        detail = detail[len(prefix) :]
    return f"{path} cannot be read as a table ({detail or type(error).__name__})"


def _contract_tables(change: _Change, contract: list[_Declared]) -> dict[str, dict[str, str | None] | None]:
    """Each table the contract covers -> its declared columns, or None for a path
    declared exactly that the source head does not have (found out on reading). A
    table declared twice must keep both declarations."""
    tables: dict[str, dict[str, str | None] | None] = {}

    def cover(path: str, columns: dict[str, str | None]) -> None:
        tables[path] = {**(tables.get(path) or {}), **columns}

    for declared in contract:
        if not declared.paths:
            for path in change.head_tables:
                cover(path, declared.columns)
        for pattern in declared.paths:
            if is_tabular(pattern) and not _is_pattern(pattern):
                cover(pattern, declared.columns)
                continue
            # A pattern, or a folder: every table it holds.
            matched = [
                path
                for path in change.head_tables
                if fnmatch.fnmatchcase(path, pattern) or path.startswith(pattern + "/")
            ]
            for path in matched:
                cover(path, declared.columns)
            if not matched:
                tables.setdefault(pattern, None)
    return tables


# -- split leakage ----------------------------------------------------------------------


def _split_leakage_check(change: _Change) -> CheckResult:
    """The source head's split keeps identical examples within one split."""
    try:
        report = change.split_report
    except _READ_ERRORS as error:
        return CheckResult(SPLIT_LEAKAGE, FAILED, _sentence(str(error)))
    if report is None:
        return CheckResult(SPLIT_LEAKAGE, PASSED, "no split in this change")
    leakage = report.get("leakage") or []
    if not leakage:
        return CheckResult(
            SPLIT_LEAKAGE,
            PASSED,
            f"No example of {change.source} appears in more than one split.",
            {"leakage": 0, "leaked_examples": 0},
        )
    examples = sum(len(ids) for leak in leakage for ids in _leak_splits(leak).values())
    groups = _plural(len(leakage), "group")
    return CheckResult(
        SPLIT_LEAKAGE,
        FAILED,
        f"{_plural(examples, 'identical example')} ({groups}) sit in more than one split of"
        f" {change.source}{_leak_example(leakage[0])}; split again so that each group lands in one split.",
        {"leakage": float(len(leakage)), "leaked_examples": float(examples)},
    )


def _leak_splits(leak: Any) -> dict[str, list[Any]]:
    """A leakage group of the split report: split name -> ids (``find_leakage``)."""
    splits = leak.get("splits") if isinstance(leak, dict) else None
    if not isinstance(splits, dict):
        return {}
    return {str(name): list(ids) for name, ids in splits.items() if isinstance(ids, list) and ids}


def _leak_example(leak: Any) -> str:
    where = [
        f"{', '.join(map(str, ids[:NAMED]))}{' …' if len(ids) > NAMED else ''} in {name}"
        for name, ids in _leak_splits(leak).items()
    ]
    return f", for example ids {' and '.join(where)}" if where else ""


# -- golden rule ------------------------------------------------------------------------


def _golden_rule_check(change: _Change) -> CheckResult:
    """Nothing the change builds on was rolled back; and into a golden target, the
    change leaves a version that could be golden itself."""
    withdrawn = _rolled_back(change)
    if withdrawn:
        return CheckResult(
            GOLDEN_RULE, FAILED, f"The change builds on rolled-back data: {'; '.join(withdrawn)}."
        )
    if not change.target_head.golden:
        return CheckResult(
            GOLDEN_RULE,
            PASSED,
            f"{change.target_version} is not golden, and nothing the change builds on was rolled back.",
        )
    minimum = golden_minimum()
    reasons: list[str] = []
    metrics: dict[str, float] = {"golden_minimum": float(minimum)}
    try:
        score = change.head_card
        metrics["completeness"] = float(score.score)
        if score.score < minimum:
            reasons.append(
                f"its card is {score.score}% complete, below the {minimum}% golden needs"
                f" (add {_listing(score.missing[:NAMED], len(score.missing))})"
            )
    except _CARD_ERRORS:
        reasons.append("its card cannot be read")
    try:
        report = change.split_report
        leakage = len((report or {}).get("leakage") or [])
        if leakage:
            reasons.append(f"{_plural(leakage, 'group')} of identical examples leak across its splits")
    except _READ_ERRORS:
        reasons.append("its split report cannot be read")
    if reasons:
        return CheckResult(
            GOLDEN_RULE,
            NEEDS_APPROVAL,
            f"{change.target_version} is golden, and {change.source} could not be: "
            f"{'; '.join(reasons)}. An approver must accept the change.",
            metrics,
        )
    return CheckResult(
        GOLDEN_RULE,
        PASSED,
        f"{change.target_version} is golden, and {change.source} could be golden too.",
        metrics,
    )


def _rolled_back(change: _Change) -> list[str]:
    """The merge base and the source head, where they were rolled back: read fresh,
    as a rollback may have come after the dry run."""
    base_id = ((change.dry_run or {}).get("base") or {}).get("id")
    roles = {change.head.id: "the source head"}
    if base_id and base_id != change.head.id:
        roles[base_id] = "the merge base (the version the branches last shared)"
    rows = Version.objects.filter(id__in=roles, rolled_back=True).values_list(
        "id", "semver", "rolled_back_reason"
    )
    # The base first: what the source builds on, then the source itself.
    ordered = sorted(rows, key=lambda row: row[0] != base_id)
    return [
        f"{roles[version_id]} {semver} was rolled back ({reason or 'no reason given'})"
        for version_id, semver, reason in ordered
    ]


# -- semantic version -------------------------------------------------------------------


def _semantic_version_check(change: _Change) -> CheckResult:
    """A major change (a schema change) into the target needs an approver; a minor
    or patch one passes, saying the version number the merge would make."""
    dry_run = change.dry_run or {}
    if dry_run.get("up_to_date"):
        return CheckResult(
            SEMANTIC_VERSION,
            PASSED,
            f"Nothing to merge, so the merge would make no version of {change.target}.",
        )
    bump = dry_run.get("bump")
    if bump not in ("major", "minor", "patch"):
        return CheckResult(
            SEMANTIC_VERSION,
            FAILED,
            "The kind of change is not known until the merge dry run ends without conflicts.",
        )
    number = ".".join(map(str, next_semver(change.dataset, change.target_head, bump)))
    reasons = [str(r) for r in dry_run.get("bump_reasons") or []]
    because = f" ({_listing(reasons[:NAMED], len(reasons), '; ')})" if reasons else ""
    if bump == "major":
        return CheckResult(
            SEMANTIC_VERSION,
            NEEDS_APPROVAL,
            f"A major change{because}: the merge would make {change.target} {number}."
            " A schema change needs an approver.",
        )
    return CheckResult(
        SEMANTIC_VERSION, PASSED, f"A {bump} change{because}: the merge would make {change.target} {number}."
    )


# -- card completeness ------------------------------------------------------------------


def card_minimum(stage: str) -> int:
    """The card completeness a change into a target at `stage` must bring."""
    return CARD_MINIMUM_BY_STAGE.get(stage, 0)


def _card_completeness_check(change: _Change) -> CheckResult:
    """The source head's card says as much as the target's stage asks."""
    stage = change.target_head.stage
    minimum = card_minimum(stage)
    try:
        score = change.head_card
    except _CARD_ERRORS:
        return CheckResult(CARD_COMPLETENESS, FAILED, f"The card of {change.source} cannot be read.")
    metrics = {"completeness": float(score.score), "minimum": float(minimum)}
    if score.score < minimum:
        return CheckResult(
            CARD_COMPLETENESS,
            FAILED,
            f"The card of {change.source} is {score.score}% complete, below the {minimum}% {change.target}"
            f" ({stage}) needs: add {_listing(score.missing[:NAMED], len(score.missing))}.",
            metrics,
        )
    return CheckResult(
        CARD_COMPLETENESS,
        PASSED,
        f"The card of {change.source} is {score.score}% complete; {change.target} ({stage}) needs"
        + (f" {minimum}%." if minimum else " no minimum."),
        metrics,
    )


# -- words ------------------------------------------------------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _listing(named: Iterable[str], total: int, separator: str = ", ") -> str:
    """'a, b, c and 4 more' (items that hold commas themselves are separated by "; ")."""
    names = list(named)
    more = total - len(names)
    return separator.join(names) + (f" and {more:,} more" if more > 0 else "")


def _first_sentence(text: str) -> str:
    """The first sentence of an error's text, without its full stop."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.split(". ")[0].rstrip(".")


def _sentence(text: str) -> str:
    text = _first_sentence(text)
    return (text[:1].upper() + text[1:] + ".") if text else "The data cannot be read."


_CHECKS: tuple[tuple[str, Callable[[_Change], CheckResult]], ...] = (
    (MERGE, _merge_check),
    (SCHEMA_CONTRACT, _schema_contract_check),
    (SPLIT_LEAKAGE, _split_leakage_check),
    (GOLDEN_RULE, _golden_rule_check),
    (SEMANTIC_VERSION, _semantic_version_check),
    (CARD_COMPLETENESS, _card_completeness_check),
)
