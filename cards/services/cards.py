"""Dataset cards on versions: reading, editing, import and export, computed facts,
and the golden gate.

A version points at a content-addressed ``CardDocument``; ``version_commit``
carries the parent's forward, so a card stays with the data until someone edits
it. An edit (or an import) is a PATCH version of the branch head that points at
the same tree and the new document: the version history is the card's history.

What the data can say for itself — size, file count, size category, schemas,
split sizes and labels, the lineage runs — is computed here and shown beside the
card, never stored in it, so it cannot go stale or be typed wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.conf import settings
from django.db import transaction

from cards.domain.cards import (
    Card,
    CardError,
    Completeness,
    completeness,
    parse_readme,
    render_readme,
    size_category,
)
from catalog import permissions
from catalog.domain.tabular import TableError, is_tabular, read_schema, read_table
from catalog.errors import StrataError, UserError
from catalog.models import AuditEvent, Branch, CardDocument, Dataset, Version
from catalog.selectors.exports import file_stream
from catalog.services.commits import CommitContent, commit_on_head, version_commit
from catalog.store import walk_tree
from lineage.models import Edge, Node, Run
from strata_store.hashing import digest_hex

SPLIT_REPORT_PATH = "splits/split.json"
# Tabular files larger than this are not opened for the card's schema list.
_SCHEMA_MAX_BYTES = 64 * 1024 * 1024
_SCHEMA_MAX_FILES = 20


def golden_minimum() -> int:
    """The completeness (0–100) a card needs before its version may be golden."""
    value = getattr(settings, "STRATA_GOLDEN_MIN_COMPLETENESS", None)
    if value is None:
        value = os.environ.get("STRATA_GOLDEN_MIN_COMPLETENESS", "80")
    return int(value)


def card_of(version: Version) -> Card:
    """The card of a version (an empty one if none was ever written)."""
    if version.card_id is None:
        return Card()
    document = CardDocument.objects.filter(pk=version.card_id).first()
    if document is None:
        return Card()
    content = dict(document.content)
    content["metadata"] = yaml.safe_load(content.pop("metadata_yaml", "") or "") or {}
    return Card.from_dict(content)


def card_document_store(card: Card) -> CardDocument:
    """Insert (or find) the content-addressed document of a card."""
    content = card.as_dict()
    # The metadata is kept as YAML text: a JSON column (PostgreSQL's jsonb) would
    # reorder its keys, and an exported card must come out in its original order.
    metadata = content.pop("metadata")
    content["metadata_yaml"] = (
        yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, default_flow_style=False)
        if metadata
        else ""
    )
    # Canonical JSON: equal cards get equal ids, whoever wrote them and when.
    data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    document_id = digest_hex(data.encode())
    document, _ = CardDocument.objects.get_or_create(id=document_id, defaults={"content": json.loads(data)})
    return document


def _branch_head(dataset: Dataset, branch: str | None) -> tuple[str, Version]:
    name = branch or dataset.default_branch
    row = Branch.objects.filter(dataset=dataset, name=name).select_related("head").first()
    if row is None:
        raise UserError(f"dataset {dataset.name} has no branch {name}.")
    return name, row.head


def card_save(
    *,
    user: permissions.User,
    dataset: Dataset,
    card: Card,
    branch: str | None = None,
    message: str = "",
    author: str = "",
    action: str = "card.edit",
) -> Version:
    """Save `card` as the card of a branch's head: a PATCH version pointing at the
    same tree. Returns the head unchanged when the card is the head's already.

    Stewards edit cards (``permissions.require_write``).
    """
    permissions.require_write(user, dataset)
    if user is not None:
        author = user.get_username()
    if not author:
        raise UserError("a card edit needs an author.")
    branch_name, head = _branch_head(dataset, branch)
    with transaction.atomic():
        document = card_document_store(card)
    if head.card_id == document.id:
        return head
    score = completeness(card)
    request = commit_on_head(
        user=user,
        dataset=dataset,
        branch_name=branch_name,
        head=head,
        author=author,
        message=message or "Edit the dataset card",
    )
    request.content = CommitContent.tree_of(head)
    request.bump, request.bump_reasons = "patch", ["the dataset card changed"]
    request.card_id = document.id
    request.relies_on_version = head
    version = version_commit(request)
    AuditEvent.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        actor=author,
        action=action,
        dataset=dataset,
        object_type="version",
        object_id=version.id,
        before={"version": head.id, "card": head.card_id},
        after={
            "version": version.id,
            "semver": version.semver,
            "card": document.id,
            "completeness": score.score,
        },
    )
    return version


def card_import(
    *,
    user: permissions.User,
    dataset: Dataset,
    text: str,
    branch: str | None = None,
    author: str = "",
) -> Version:
    """Import a Hugging Face ``README.md`` as the card of a branch's head.

    Malformed YAML front matter is a UserError and nothing is created.
    """
    try:
        card = parse_readme(text)
    except CardError as error:
        raise UserError(f"cannot import the card: {error}") from None
    return card_save(
        user=user,
        dataset=dataset,
        card=card,
        branch=branch,
        author=author,
        message="Import the dataset card",
        action="card.import",
    )


def card_export(version: Version) -> str:
    """A version's card as a Hugging Face ``README.md``."""
    return render_readme(card_of(version), name=version.dataset.name)


# -- computed facts -------------------------------------------------------------------


@dataclass
class CardFacts:
    """What the data says about itself, shown beside the card."""

    logical_bytes: int
    file_count: int
    rows: int | None = None
    size_category: str = ""
    schemas: dict[str, dict[str, str]] = field(default_factory=dict)
    split: dict[str, Any] | None = None
    producing_run: dict[str, Any] | None = None
    preprocessing: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_file(version: Version, path: str) -> bytes:
    return b"".join(file_stream(version, path).chunks)


def split_report_of(version: Version) -> dict[str, Any] | None:
    """The split report a split version holds (``splits/split.json``), if any."""
    if not any(w.path == SPLIT_REPORT_PATH for w in walk_tree(version.tree_id)):
        return None
    try:
        return json.loads(_read_file(version, SPLIT_REPORT_PATH))
    except (ValueError, StrataError):
        return None


def _run_dict(run: Any) -> dict[str, Any]:
    return {
        "id": run.node_id,
        "name": run.name,
        "step": run.step,
        "params": run.params,
        "actor": run.actor,
        "ended": run.ended.isoformat() if run.ended else None,
    }


def _lineage(version: Version, facts: CardFacts) -> None:
    """The run that produced this version, and the runs that produced its ancestors
    (oldest first): the preprocessing steps."""
    chain: list[Version] = []
    current: Version | None = version
    while current is not None and len(chain) < 100:
        chain.append(current)
        current = current.parent
    nodes = dict(Node.objects.filter(version__in=chain).values_list("version_id", "pk"))
    if not nodes:
        return
    edges = Edge.objects.filter(dst_id__in=nodes.values(), src__kind=Node.Kind.RUN).values_list(
        "src_id", "dst_id"
    )
    runs_by_node: dict[int, list[int]] = {}
    for src, dst in edges:
        runs_by_node.setdefault(dst, []).append(src)
    runs = {run.node_id: run for run in Run.objects.filter(node_id__in=[s for s, _ in edges])}
    seen: set[int] = set()
    for index, member in enumerate(chain):
        for run_id in sorted(runs_by_node.get(nodes.get(member.id, -1), [])):
            if run_id in seen or run_id not in runs:
                continue
            seen.add(run_id)
            if index == 0 and facts.producing_run is None:
                facts.producing_run = _run_dict(runs[run_id])
            facts.preprocessing.append(_run_dict(runs[run_id]) | {"version": member.semver})
    facts.preprocessing.reverse()


def card_facts(version: Version) -> CardFacts:
    """Compute the card's facts from the version's files and lineage."""
    facts = CardFacts(logical_bytes=version.logical_bytes, file_count=version.file_count)
    walked = walk_tree(version.tree_id)
    tabular = [
        w for w in walked if w.entry.is_file and is_tabular(w.path) and not w.path.startswith("splits/")
    ]
    rows = 0
    for item in tabular[:_SCHEMA_MAX_FILES]:
        if item.entry.size > _SCHEMA_MAX_BYTES:
            facts.notes.append(f"{item.path} is too large to read for the card.")
            rows = -1
            continue
        try:
            data = _read_file(version, item.path)
            facts.schemas[item.path] = read_schema(item.path, data)
            if rows >= 0:
                rows += read_table(item.path, data).num_rows
        except (TableError, StrataError) as error:
            facts.notes.append(str(error))
            rows = -1
    if len(tabular) > _SCHEMA_MAX_FILES:
        facts.notes.append(f"only the first {_SCHEMA_MAX_FILES} of {len(tabular)} tables were read.")
        rows = -1
    if tabular and rows >= 0:
        facts.rows = rows
        facts.size_category = size_category(rows)
    elif not tabular:
        facts.size_category = size_category(version.file_count)
    if any(w.path == SPLIT_REPORT_PATH for w in walked):
        try:
            facts.split = json.loads(_read_file(version, SPLIT_REPORT_PATH))
        except (ValueError, StrataError):
            facts.notes.append("the split report cannot be read.")
    _lineage(version, facts)
    return facts


def card_history(version: Version, limit: int = 50) -> list[Version]:
    """The versions in this version's ancestry where the card changed, newest first."""
    history: list[Version] = []
    current: Version | None = version
    steps = 0
    while current is not None and steps < 1000 and len(history) < limit:
        parent = current.parent
        if current.card_id and (parent is None or parent.card_id != current.card_id):
            history.append(current)
        current = parent
        steps += 1
    return history


# -- golden ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldenCheck:
    score: Completeness
    minimum: int
    leakage: int

    @property
    def complete_enough(self) -> bool:
        return self.score.score >= self.minimum


def golden_check(version: Version) -> GoldenCheck:
    report = split_report_of(version) or {}
    return GoldenCheck(completeness(card_of(version)), golden_minimum(), len(report.get("leakage") or []))


def version_mark_golden(
    *,
    user: permissions.User,
    version: Version,
    override_reason: str = "",
    author: str = "",
) -> Version:
    """Mark a version golden: its card must reach the configured completeness, and
    a split with leakage needs an override with a recorded reason.

    Stewards and approvers may mark versions golden (with read access).
    """
    dataset = version.dataset
    permissions.require_read(user, dataset)
    if not (
        permissions.has_role(user, permissions.STEWARD) or permissions.has_role(user, permissions.APPROVER)
    ):
        raise permissions.Forbidden(f"you need the steward or approver role to mark {dataset.name} golden.")
    check = golden_check(version)
    label = f"{dataset.name}@{version.semver}"
    if not check.complete_enough:
        missing = ", ".join(check.score.missing[:5])
        raise UserError(
            f"the card of {label} is {check.score.score}% complete, below the {check.minimum}% needed"
            f" for golden: add {missing}."
        )
    override_reason = (override_reason or "").strip()
    if check.leakage and not override_reason:
        raise UserError(
            f"{label} has {check.leakage} examples leaking across splits; fix the split,"
            " or give an override reason to mark it golden anyway."
        )
    actor = user.get_username() if user is not None else author or "local"
    with transaction.atomic():
        if version.golden:
            return version
        Version.objects.filter(pk=version.pk).update(golden=True)
        version.golden = True
        AuditEvent.objects.create(
            user=user if user is not None and user.is_authenticated else None,
            actor=actor,
            action="version.golden",
            dataset=dataset,
            object_type="version",
            object_id=version.id,
            before={"golden": False},
            after={
                "golden": True,
                "completeness": check.score.score,
                "minimum": check.minimum,
                "leakage": check.leakage,
                **({"override_reason": override_reason} if check.leakage else {}),
            },
        )
    return version
