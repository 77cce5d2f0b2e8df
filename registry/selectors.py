"""Reads about model versions: lists, the model version page, and the comparison
of two model versions (metric deltas and what changed in their data).

Each selector serves one page or endpoint and keeps its query count flat: pins
come with their versions and datasets in one query, the default branch heads of
every pinned dataset in one more. Datasets the user may not read are counted,
never shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Max
from django.urls import reverse

from cards.domain.cards import completeness, parse_readme
from catalog import permissions
from catalog.errors import NotFound, StrataError, UserError
from catalog.models import Version
from catalog.selectors import default_heads
from catalog.selectors.changes import ChangeReport, change_report
from catalog.selectors.exports import file_stream
from catalog.store import trees_load
from lineage.domain import graph as lgraph
from lineage.models import Edge, Run
from lineage.selectors import LAYER_CAP, _neighbourhood
from registry.domain import metrics as lmetrics
from registry.models import ModelPin, ModelVersion
from strata_store.errors import StoreError

# How far up the model page walks: far enough to reach the raw sources of a
# pipeline of a dozen steps (collect, clean, dedup, label, split, train…).
UPSTREAM_DEPTH = 12
# A card larger than this is not read on a page.
_MAX_CARD_BYTES = 1024 * 1024
CARD_NAMES = ("README.md", "readme.md", "DATASET_CARD.md")


def tolerance() -> float:
    """The metric regression tolerance (absolute), from settings."""
    return float(getattr(settings, "STRATA_METRIC_TOLERANCE", lmetrics.DEFAULT_TOLERANCE))


def split_model_spec(spec: str) -> tuple[str, str]:
    """'fraud@3.1' -> ('fraud', '3.1')."""
    name, sep, version = (spec or "").strip().partition("@")
    if not sep or not name or not version:
        raise UserError(f"{spec!r} does not name a model version: write MODEL@VERSION, e.g. fraud@3.1.")
    return name, version


def model_get(*, user: permissions.User, spec: str) -> ModelVersion:
    """The model version 'fraud@3.1' (NotFound if there is none)."""
    name, version = split_model_spec(spec)
    model = ModelVersion.objects.filter(name=name, version=version).select_related("predecessor").first()
    if model is None or (user is not None and not user.is_authenticated):
        raise NotFound(f"there is no model version {name}@{version}.")
    return model


@dataclass(slots=True)
class ModelSummary:
    name: str
    versions: int
    latest: ModelVersion
    flagged: int


def model_list(*, user: permissions.User, query: str = "") -> list[ModelSummary]:
    """Every model name with its latest version: two queries."""
    rows = ModelVersion.objects.all()
    if query:
        rows = rows.filter(name__icontains=query.strip())
    grouped = list(rows.values("name").annotate(count=Count("node"), newest=Max("created")).order_by("name"))
    latest: dict[str, ModelVersion] = {}
    flagged: dict[str, int] = {}
    names = [row["name"] for row in grouped]
    for model in ModelVersion.objects.filter(name__in=names).order_by("name", "-created", "-node_id"):
        latest.setdefault(model.name, model)
        flagged[model.name] = flagged.get(model.name, 0) + (1 if model.regressions else 0)
    return [
        ModelSummary(row["name"], row["count"], latest[row["name"]], flagged.get(row["name"], 0))
        for row in grouped
        if row["name"] in latest
    ]


def model_runs(model: ModelVersion) -> tuple[list[Run], list[Run]]:
    """The runs that produced the model, and the runs that consumed it."""
    producing = Edge.objects.filter(dst_id=model.node_id).values("src_id")
    consuming = Edge.objects.filter(src_id=model.node_id).values("dst_id")
    made = list(Run.objects.filter(node_id__in=producing).order_by("node_id"))
    used = list(Run.objects.filter(node_id__in=consuming).order_by("node_id"))
    return made, used


def model_versions(*, user: permissions.User, name: str) -> list[ModelVersion]:
    """The versions of one model, newest first (NotFound if it has none)."""
    versions = list(
        ModelVersion.objects.filter(name=name)
        .select_related("predecessor")
        .prefetch_related("pins__version__dataset")
        .order_by("-created", "-node_id")
    )
    if not versions:
        raise NotFound(f"there is no model named {name!r}.")
    return versions


@dataclass(slots=True)
class VersionRow:
    """A row of a model's versions page: the version, its metric values in the
    page's column order, and what it trained on that the viewer may see."""

    model: ModelVersion
    values: list[Any]
    trained_on: list[ModelPin]
    hidden: int  # pinned versions of datasets the viewer may not read


def model_version_rows(
    *, user: permissions.User, versions: list[ModelVersion], metric_names: list[str]
) -> list[VersionRow]:
    """The rows of the versions page; pins are filtered by `model_visible_pins`,
    the one rule the model page and the API use too."""
    rows = []
    for model in versions:
        pins, hidden = model_visible_pins(user, model)
        rows.append(
            VersionRow(
                model=model,
                values=[model.metrics.get(metric) for metric in metric_names],
                trained_on=[pin for pin in pins if not pin.evaluation],
                hidden=hidden,
            )
        )
    return rows


# -- the model version page ------------------------------------------------------------


@dataclass(slots=True)
class CardInfo:
    """A pinned version's dataset card, if its root holds one."""

    state: str  # "none", "ok" or "unreadable"
    score: int | None = None
    missing: list[str] = field(default_factory=list)


def card_info(version: Version) -> CardInfo:
    """Completeness of the card at the version's root (a Hugging Face style
    README.md). Cards are not stored apart from the data yet: no such file is
    "no card", and one that cannot be read now (cold storage, damage) says so."""
    try:
        entries = trees_load([version.tree_id])[version.tree_id]
    except StrataError:
        return CardInfo("unreadable")
    entry = next((e for e in entries if e.name in CARD_NAMES and e.is_file), None)
    if entry is None:
        return CardInfo("none")
    if entry.size > _MAX_CARD_BYTES:
        return CardInfo("unreadable")
    try:
        text = b"".join(file_stream(version, entry.name).chunks).decode("utf-8")
        result = completeness(parse_readme(text))
    except (StrataError, StoreError, UnicodeDecodeError, ValueError):
        return CardInfo("unreadable")
    return CardInfo("ok", result.score, result.missing)


@dataclass(slots=True)
class PinView:
    """One pinned dataset version as the page shows it."""

    pin: ModelPin
    version: Version
    head: Version | None  # where the dataset's default branch points now
    card: CardInfo

    @property
    def moved_on(self) -> bool:
        return self.head is not None and self.head.pk != self.version.pk

    @property
    def version_url(self) -> str:
        return reverse("catalog:version_detail", args=[self.version.dataset.name, self.version.id])


@dataclass(slots=True)
class DataChange:
    """A role whose pinned version differs between two model versions."""

    role: str
    before: Version | None
    after: Version | None

    @property
    def compare_url(self) -> str | None:
        return catalog_compare_url(self.before, self.after)

    @property
    def same_dataset(self) -> bool:
        return (
            self.before is not None
            and self.after is not None
            and self.before.dataset_id == self.after.dataset_id
        )


def catalog_compare_url(before: Version | None, after: Version | None) -> str | None:
    """The catalog's compare page for two versions of one dataset
    (``/datasets/<name>/compare/?from=<id>&to=<id>``)."""
    if before is None or after is None or before.dataset_id != after.dataset_id:
        return None
    query = urlencode({"from": before.id, "to": after.id})
    return reverse("catalog:compare", args=[before.dataset.name]) + "?" + query


def models_compare_url(before: ModelVersion, after: ModelVersion) -> str:
    return reverse("registry:model_compare") + "?" + urlencode({"a": before.spec, "b": after.spec})


@dataclass(slots=True)
class ModelPage:
    model: ModelVersion
    trained_on: list[PinView]
    evaluated_on: list[PinView]
    hidden: int  # pinned versions of datasets the user may not read
    metrics: list[lmetrics.MetricChange]
    data_changes: list[DataChange]  # against the predecessor
    training_runs: list[Run]
    evaluation_runs: list[Run]
    layout: lgraph.Layout
    lock_command: str
    reproduce_command: str

    @property
    def rolled_back(self) -> list[PinView]:
        return [pin for pin in self.trained_on + self.evaluated_on if pin.version.rolled_back]

    @property
    def compare_url(self) -> str | None:
        if self.model.predecessor is None:
            return None
        return models_compare_url(self.model.predecessor, self.model)


def model_visible_pins(user: permissions.User, model: ModelVersion) -> tuple[list[ModelPin], int]:
    """The pins of `model` on datasets `user` may read, and how many others there are:
    a restricted dataset the user cannot read does not exist for them, so neither
    do its name, version or tree here."""
    prefetched = "pins" in getattr(model, "_prefetched_objects_cache", {})
    pins = list(model.pins.all() if prefetched else model.pins.select_related("version__dataset"))
    visible = [pin for pin in pins if permissions.can_read(user, pin.version.dataset)]
    return visible, len(pins) - len(visible)


def data_changes(before: list[ModelPin], after: list[ModelPin]) -> list[DataChange]:
    """Roles whose pinned version differs, in role order (training roles first)."""
    old = {pin.role: pin for pin in before}
    new = {pin.role: pin for pin in after}
    changes = []
    for role in sorted(set(old) | set(new), key=lambda r: (_is_eval(old, new, r), r)):
        a, b = old.get(role), new.get(role)
        if a is not None and b is not None and a.version_id == b.version_id:
            continue
        changes.append(DataChange(role, a.version if a else None, b.version if b else None))
    return changes


def _is_eval(old: dict[str, ModelPin], new: dict[str, ModelPin], role: str) -> bool:
    pin = new.get(role) or old[role]
    return pin.evaluation


def model_page(*, user: permissions.User, spec: str) -> ModelPage:
    """Everything the model version page shows."""
    model = model_get(user=user, spec=spec)
    pins, hidden = model_visible_pins(user, model)
    heads = default_heads(list({pin.version.dataset_id: pin.version.dataset for pin in pins}.values()))
    views = [
        PinView(pin, pin.version, heads.get(pin.version.dataset_id), card_info(pin.version)) for pin in pins
    ]
    predecessor = model.predecessor
    before_metrics = predecessor.metrics if predecessor else {}
    changes: list[DataChange] = []
    if predecessor is not None:
        before_pins, _ = model_visible_pins(user, predecessor)
        changes = data_changes(before_pins, pins)
    made, used = model_runs(model)
    fetched = _neighbourhood(
        user=user, focus=model.node, depth=UPSTREAM_DEPTH, direction="upstream", cap=LAYER_CAP
    )
    return ModelPage(
        model=model,
        trained_on=[view for view in views if not view.pin.evaluation],
        evaluated_on=[view for view in views if view.pin.evaluation],
        hidden=hidden,
        metrics=[
            change
            for change in lmetrics.compare_metrics(before_metrics, model.metrics, tolerance())
            if change.after is not None
        ],
        data_changes=changes,
        training_runs=made,
        evaluation_runs=used,
        layout=lgraph.layout(fetched.graph, focus=model.node_id, cap=LAYER_CAP),
        lock_command=f"python manage.py strata lock --model {model.spec} -o strata.lock",
        reproduce_command="python manage.py strata reproduce strata.lock DEST",
    )


# -- comparing two model versions --------------------------------------------------------


@dataclass(slots=True)
class LabelRow:
    label: str
    before: int
    after: int
    share_before: float
    share_after: float

    @property
    def change(self) -> int:
        return self.after - self.before

    @property
    def share_change(self) -> float:
        return self.share_after - self.share_before


@dataclass(slots=True)
class LabelShiftView:
    path: str
    column: str
    rows: list[LabelRow]
    psi: float
    p_value: float

    @property
    def shifted(self) -> bool:
        """PSI above 0.1 is the usual "moderate shift" line."""
        return self.psi > 0.1


@dataclass(slots=True)
class RoleDiff:
    """What changed in one role's data between model A and model B."""

    role: str
    before: Version | None
    after: Version | None
    report: ChangeReport | None = None
    error: str = ""
    same_as: str = ""  # an earlier role with exactly this pair of versions, shown once

    @property
    def unchanged(self) -> bool:
        return self.before is not None and self.after is not None and self.before.pk == self.after.pk

    @property
    def compare_url(self) -> str | None:
        return catalog_compare_url(self.before, self.after)

    @property
    def upstream_url(self) -> str | None:
        """The lineage page's "what changed upstream" for the two versions."""
        if self.before is None or self.after is None or self.unchanged:
            return None
        query = urlencode(
            {
                "a": f"{self.before.dataset.name}@{self.before.id}",
                "b": f"{self.after.dataset.name}@{self.after.id}",
            }
        )
        return reverse("lineage:compare") + "?" + query

    @property
    def label_shifts(self) -> list[LabelShiftView]:
        """Each table whose label distribution was compared, ready for a page."""
        if self.report is None:
            return []
        views = []
        for table in self.report.tables:
            shift = table.labels
            if shift is None:
                continue
            share_a, share_b = shift.proportions(shift.counts_a), shift.proportions(shift.counts_b)
            rows = [
                LabelRow(
                    label=label,
                    before=shift.counts_a.get(label, 0),
                    after=shift.counts_b.get(label, 0),
                    share_before=share_a[label],
                    share_after=share_b[label],
                )
                for label in shift.labels
            ]
            views.append(
                LabelShiftView(
                    path=table.path, column=shift.column, rows=rows, psi=shift.psi, p_value=shift.p_value
                )
            )
        return views

    def as_dict(self) -> dict[str, Any]:
        def side(version: Version | None) -> dict[str, Any] | None:
            if version is None:
                return None
            return {"dataset": version.dataset.name, "version": version.id, "semver": version.semver}

        return {
            "role": self.role,
            "a": side(self.before),
            "b": side(self.after),
            "unchanged": self.unchanged,
            "changes": self.report.as_dict() if self.report else None,
            "same_as": self.same_as or None,
            "error": self.error or None,
        }


@dataclass(slots=True)
class ModelComparison:
    a: ModelVersion
    b: ModelVersion
    metrics: list[lmetrics.MetricChange]
    params: dict[str, tuple[Any, Any]]
    data: list[RoleDiff]
    hidden: int

    @property
    def regressions(self) -> list[lmetrics.MetricChange]:
        return [change for change in self.metrics if change.regressed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.spec,
            "b": self.b.spec,
            "metrics": [change.as_dict() for change in self.metrics],
            "params": {key: {"a": a, "b": b} for key, (a, b) in self.params.items()},
            "data": [diff.as_dict() for diff in self.data],
            "hidden": self.hidden,
        }


def model_compare(
    *, user: permissions.User, spec_a: str, spec_b: str, tables: bool = True
) -> ModelComparison:
    """Model A against model B: metric deltas (B − A, judged by each metric's
    direction), parameters that differ, and for each role the change report of
    its data (files, folders, tables and label shift), as the catalog computes it."""
    a = model_get(user=user, spec=spec_a)
    b = model_get(user=user, spec=spec_b)
    pins_a, hidden_a = model_visible_pins(user, a)
    pins_b, hidden_b = model_visible_pins(user, b)
    old = {pin.role: pin.version for pin in pins_a}
    new = {pin.role: pin.version for pin in pins_b}
    evaluation = {pin.role: pin.evaluation for pin in pins_a + pins_b}
    diffs: list[RoleDiff] = []
    # Roles often pin the same versions (train and test from one split version):
    # their change is computed and shown once.
    first_role: dict[tuple[str, str], str] = {}
    for role in sorted(set(old) | set(new), key=lambda r: (evaluation[r], r)):
        diff = RoleDiff(role, old.get(role), new.get(role))
        pair = (diff.before.pk, diff.after.pk) if diff.before is not None and diff.after is not None else None
        if pair is not None and pair in first_role:
            diff.same_as = first_role[pair]
        elif pair is not None:
            first_role[pair] = role
        if diff.before is not None and diff.after is not None and not diff.unchanged and not diff.same_as:
            try:
                diff.report = change_report(diff.before, diff.after, tables=tables)
            except (StrataError, StoreError) as error:
                # Data in cold storage or damaged: the rest of the comparison stands.
                diff.error = str(error)
        diffs.append(diff)
    params = {
        key: (a.params.get(key), b.params.get(key))
        for key in sorted(set(a.params) | set(b.params))
        if a.params.get(key) != b.params.get(key)
    }
    return ModelComparison(
        a=a,
        b=b,
        metrics=lmetrics.compare_metrics(a.metrics, b.metrics, tolerance()),
        params=params,
        data=diffs,
        hidden=hidden_a + hidden_b,
    )


def check_pair(spec_a: str, spec_b: str) -> None:
    if not spec_a or not spec_b:
        raise UserError(
            "pick two model versions to compare, as MODEL@VERSION (e.g. fraud@3.0 and fraud@3.1)."
        )
