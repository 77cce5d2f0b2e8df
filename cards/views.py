"""Dataset card pages: the card of a version (rendered, sanitised), its computed
facts and completeness, the editor, the history of edits, import and export as a
Hugging Face README.md, the split form and golden marking.

Thin like every view: parse, call one service, render. Who may do what is decided
by the services (stewards edit cards and make splits; stewards and approvers mark
versions golden); a refusal is shown beside the form or as a message on the page
(`catalog.views.errors`).
"""

from __future__ import annotations

from typing import Any, TypedDict

import markdown
import nh3
import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cards.domain.cards import SECTIONS, Card, completeness
from cards.services.cards import (
    card_export,
    card_facts,
    card_history,
    card_import,
    card_of,
    card_save,
    golden_check,
    version_mark_golden,
)
from cards.services.splits import split_make
from catalog import permissions, selectors
from catalog.errors import UserError
from catalog.models import Branch
from catalog.views.errors import flash_error, form_error
from catalog.views.pages import _dataset_for, _version_for

# What a card's Markdown may become: text formatting, links, tables, code; no
# scripts, styles, forms or frames, whatever an imported card contains.
_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip


def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to show: rendered, then sanitised."""
    html = markdown.markdown(text, extensions=["tables", "fenced_code"], output_format="html")
    return nh3.clean(html, tags=_ALLOWED_TAGS, link_rel="nofollow noopener noreferrer")


def _card_html(card: Card) -> str:
    parts = []
    if card.preamble:
        parts.append(card.preamble)
    for block in card.blocks:
        parts.append(f"{'#' * min(block.level + 1, 6)} {block.heading}\n\n{block.body}")
    return render_markdown("\n\n".join(parts))


def _metadata_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict | list):
        text = yaml.safe_dump(value, sort_keys=False, default_flow_style=True, width=10_000).strip()
        return text if len(text) <= 200 else text[:199] + "…"
    return str(value)


def _metadata(text: str) -> dict[str, Any]:
    """The card's metadata as typed in the editor: YAML fields, one per line."""
    try:
        metadata = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"the metadata is not valid YAML{where}: fix it and save again.") from None
    if not isinstance(metadata, dict):
        raise UserError("the metadata must be YAML fields (name: value), one per line.")
    return metadata


def _whole_number(value: object, what: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise UserError(f"the {what} must be a whole number, not {value!r}.") from None


def _can(user: Any, dataset: Any, *roles: str) -> bool:
    return permissions.can_read(user, dataset) and any(permissions.has_role(user, role) for role in roles)


@login_required
def card_detail(request: HttpRequest, name: str, version_id: str) -> HttpResponse:
    """A version's card: the prose, the computed facts, completeness, history."""
    dataset = _dataset_for(request, name)
    version = _version_for(dataset, version_id)
    card = card_of(version)
    facts = card_facts(version)
    split = facts.split or {}
    split_rows = [
        (
            split_name,
            size,
            ", ".join(
                f"{label} {count}" for label, count in (split.get("labels") or {}).get(split_name, {}).items()
            ),
        )
        for split_name, size in (split.get("sizes") or {}).items()
    ]
    context = {
        "dataset": dataset,
        "version": version,
        "card": card,
        "card_html": _card_html(card),
        "metadata_yaml": yaml.safe_dump(card.metadata, sort_keys=False, allow_unicode=True)
        if card.metadata
        else "",
        "facts": facts,
        "split_rows": split_rows,
        "metadata_items": [(key, _metadata_text(value)) for key, value in card.metadata.items()],
        "check": golden_check(version),
        "history": card_history(version),
        "can_edit": _can(request.user, dataset, permissions.STEWARD),
        "can_golden": _can(request.user, dataset, permissions.STEWARD, permissions.APPROVER),
        "is_head": Branch.objects.filter(dataset=dataset, head=version).exists(),
    }
    return render(request, "cards/card_detail.html", context)


@login_required
def card_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The card editor (stewards): the branch head's card, metadata as YAML and one
    text box per section. Saving makes a PATCH version on the same tree."""
    dataset = _dataset_for(request, name, write=True)
    branch_name = request.POST.get("branch") or request.GET.get("branch") or dataset.default_branch
    branch = Branch.objects.filter(dataset=dataset, name=branch_name).select_related("head").first()
    if branch is None:
        messages.error(request, f"{dataset.name} has no branch {branch_name}.")
        return redirect("catalog:dataset_detail", dataset.name)
    card = card_of(branch.head)
    metadata_text = (
        yaml.safe_dump(card.metadata, sort_keys=False, allow_unicode=True) if card.metadata else ""
    )
    if request.method == "POST":
        metadata_text = request.POST.get("metadata", "")
        for key, _, _ in SECTIONS:
            card.set_section(key, request.POST.get(f"section_{key}", ""))
    with form_error(not_found=True) as refused:
        if request.method == "POST":
            card.metadata = _metadata(metadata_text)
            version = card_save(
                user=request.user,
                dataset=dataset,
                card=card,
                branch=branch.name,
                message=request.POST.get("message", "").strip() or "Edit the dataset card",
            )
            messages.success(request, f"Card saved as {dataset.name}@{version.semver}.")
            return redirect("cards:card_detail", dataset.name, version.semver)
    sections = card.sections
    context = {
        "dataset": dataset,
        "branch": branch,
        "error": refused.message,
        "metadata_text": metadata_text,
        "fields": [(key, title, sections.get(key, "")) for key, title, _ in SECTIONS],
        "score": completeness(card),
    }
    return render(request, "cards/card_edit.html", context, status=refused.status)


@login_required
def card_download(request: HttpRequest, name: str, version_id: str) -> HttpResponse:
    """The card as a Hugging Face README.md."""
    dataset = _dataset_for(request, name)
    version = _version_for(dataset, version_id)
    response = HttpResponse(card_export(version), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="README.md"'
    return response


@login_required
@require_POST
def card_upload(request: HttpRequest, name: str) -> HttpResponse:
    """Import a README.md (an uploaded file) as the branch head's card."""
    dataset = _dataset_for(request, name, write=True)
    upload = request.FILES.get("readme")
    with flash_error(request):
        if upload is None:
            raise UserError("choose a README.md file to import.")
        version = card_import(
            user=request.user, dataset=dataset, text=_utf8_text(upload), branch=request.POST.get("branch")
        )
        messages.success(request, f"Card imported as {dataset.name}@{version.semver}.")
        return redirect("cards:card_detail", dataset.name, version.semver)
    head = selectors.resolve_ref(dataset, None)
    return redirect("cards:card_detail", dataset.name, head.semver)


def _utf8_text(upload: Any) -> str:
    try:
        return upload.read().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{upload.name} is not UTF-8 text.") from None


@login_required
@require_POST
def version_golden(request: HttpRequest, name: str, version_id: str) -> HttpResponse:
    """Mark a version golden (stewards and approvers), past the completeness and
    leakage gates; an override reason is recorded in the audit log."""
    dataset = _dataset_for(request, name)
    version = _version_for(dataset, version_id)
    with flash_error(request):
        version_mark_golden(
            user=request.user, version=version, override_reason=request.POST.get("override_reason", "")
        )
        messages.success(request, f"{dataset.name}@{version.semver} is golden.")
    return redirect("cards:card_detail", dataset.name, version.semver)


class _SplitForm(TypedDict):
    """The split form's fields as given, or their defaults."""

    ref: str
    id_column: str
    label_column: str
    ratios: str
    method: str
    seed: str
    stratify: bool
    branch: str
    file: str


@login_required
def split_new(request: HttpRequest, name: str) -> HttpResponse:
    """The split form: the same as `strata split`, making a version at stage split."""
    dataset = _dataset_for(request, name, write=True)
    data = request.POST if request.method == "POST" else request.GET
    form: _SplitForm = {
        "ref": data.get("ref") or dataset.default_branch,
        "id_column": data.get("id_column", ""),
        "label_column": data.get("label_column", ""),
        "ratios": data.get("ratios") or "train=0.8,val=0.1,test=0.1",
        "method": data.get("method") or "hash",
        "seed": data.get("seed") or "42",
        "stratify": bool(data.get("stratify")),
        "branch": data.get("branch") or "main",
        "file": data.get("file", ""),
    }
    # The ref to split is named in the form: one that is not there is said beside it.
    with form_error(not_found=True) as refused:
        if request.method == "POST":
            seed = _whole_number(form["seed"], "seed")
            if not form["id_column"].strip():
                raise UserError("name the id column: the column that identifies each example.")
            source = selectors.resolve_ref(dataset, form["ref"])
            result = split_make(
                user=request.user,
                dataset=dataset,
                source=source,
                id_column=form["id_column"].strip(),
                ratios=form["ratios"],
                method=form["method"],
                seed=seed,
                label_column=form["label_column"].strip() or None,
                stratify=form["stratify"],
                branch=form["branch"].strip(),
                file=form["file"].strip() or None,
                origin="web",
            )
            if result.created:
                messages.success(request, f"Split made as {dataset.name}@{result.version.semver}.")
            else:
                messages.info(request, f"{dataset.name}@{result.version.semver} already holds this split.")
            return redirect("cards:card_detail", dataset.name, result.version.semver)
    branches = list(Branch.objects.filter(dataset=dataset).values_list("name", flat=True))
    context = {"dataset": dataset, "form": form, "error": refused.message, "branches": branches}
    return render(request, "cards/split_new.html", context, status=refused.status)
