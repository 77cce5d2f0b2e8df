"""Dataset cards: the Hugging Face card format, read and written, and how complete
a card is.

Plain Python, no Django. A card is metadata (the YAML front matter of a Hugging
Face dataset ``README.md``: pretty_name, license, language, task_categories, …) and
prose sections merged from the Hugging Face card template and *Datasheets for
Datasets*. Importing a real card maps its headings onto those sections; headings
Strata does not know, and metadata keys it does not know, are kept verbatim, so an
import followed by an export loses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

METADATA_FIELDS = (
    "pretty_name",
    "license",
    "language",
    "task_categories",
    "task_ids",
    "size_categories",
    "source_datasets",
    "annotations_creators",
    "language_creators",
    "multilinguality",
    "tags",
    "configs",
)

# (key, heading written on export, headings recognised on import)
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("summary", "Dataset Summary", ("dataset summary", "summary", "dataset description", "description")),
    (
        "intended_uses",
        "Intended Uses",
        ("intended uses", "uses", "direct use", "supported tasks and leaderboards"),
    ),
    ("out_of_scope_uses", "Out-of-Scope Uses", ("out-of-scope use", "out-of-scope uses", "out of scope use")),
    (
        "data_sources",
        "Data Sources and Collection",
        (
            "source data",
            "data collection and processing",
            "initial data collection and normalization",
            "data sources",
            "collection process",
            "data sources and collection",
            "who are the source data producers?",
            "who are the source language producers?",
        ),
    ),
    ("preprocessing", "Preprocessing", ("preprocessing", "preprocessing steps", "data preprocessing")),
    ("annotation", "Annotation Process", ("annotations", "annotation process", "who are the annotators?")),
    ("splits", "Data Splits", ("data splits", "splits", "split sizes and strategy")),
    ("label_distribution", "Label Distribution", ("label distribution", "labels")),
    (
        "limitations",
        "Bias, Risks, and Limitations",
        (
            "bias, risks, and limitations",
            "discussion of biases",
            "other known limitations",
            "known limitations",
            "considerations for using the data",
            "recommendations",
            "social impact of dataset",
        ),
    ),
    (
        "personal_information",
        "Personal and Sensitive Information",
        ("personal and sensitive information",),
    ),
    (
        "license_citation",
        "Licensing and Citation",
        ("licensing information", "citation information", "citation", "licensing and citation", "license"),
    ),
    ("maintenance", "Maintenance", ("maintenance", "dataset curators", "contributions")),
    ("contact", "Contact", ("contact", "dataset card contact", "point of contact", "dataset card authors")),
)
SECTION_KEYS = tuple(key for key, _, _ in SECTIONS)
_HEADING_TO_KEY = {alias: key for key, _, aliases in SECTIONS for alias in aliases}
_TITLES = {key: title for key, title, _ in SECTIONS}

# What a card must say before its version may be marked golden, with the weight
# each item carries in the completeness score.
CHECKLIST: tuple[tuple[str, str, int], ...] = (
    ("pretty_name", "a readable name", 1),
    ("license", "a licence", 2),
    ("task_categories", "the task categories", 1),
    ("summary", "a summary", 2),
    ("intended_uses", "intended uses", 1),
    ("out_of_scope_uses", "out-of-scope uses", 1),
    ("data_sources", "data sources and collection", 2),
    ("annotation", "the annotation process", 1),
    ("limitations", "known biases, risks and limitations", 2),
    ("personal_information", "personal and sensitive information", 2),
    ("license_citation", "licence and citation", 1),
    ("maintenance", "maintenance", 1),
    ("contact", "a contact", 1),
)


class CardError(ValueError):
    """A card that cannot be read; the message says where."""


@dataclass
class Block:
    """One section of a card as written: its heading, level and body, and the
    Strata section it holds (None for a heading Strata does not map)."""

    heading: str
    level: int
    body: str
    key: str | None = None


@dataclass
class Card:
    """A card: metadata, then its sections in the order they are written.

    Sections keep their original headings, so an imported card is exported as it
    came; Strata's own sections are read and edited through `sections`/`set_section`.
    """

    metadata: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    title: str = ""
    preamble: str = ""

    @property
    def sections(self) -> dict[str, str]:
        """Strata's sections: the bodies of the blocks mapped to each key, joined."""
        found: dict[str, list[str]] = {}
        for block in self.blocks:
            if block.key is not None and block.body.strip():
                found.setdefault(block.key, []).append(block.body)
        return {key: "\n\n".join(bodies) for key, bodies in found.items()}

    def set_section(self, key: str, body: str) -> None:
        """Replace a section's text (the first block of that key keeps its heading)."""
        if key not in SECTION_KEYS:
            raise CardError(f"{key!r} is not a card section.")
        first = next((block for block in self.blocks if block.key == key), None)
        self.blocks = [block for block in self.blocks if block.key != key or block is first]
        if first is None:
            if body.strip():
                self.blocks.append(Block(_TITLES[key], 2, body.strip("\n"), key))
        elif body.strip():
            first.body = body.strip("\n")
        else:
            self.blocks.remove(first)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metadata": self.metadata,
            "blocks": [
                {"heading": b.heading, "level": b.level, "body": b.body, "key": b.key} for b in self.blocks
            ],
            "title": self.title,
            "preamble": self.preamble,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Card:
        return cls(
            metadata=dict(data.get("metadata") or {}),
            blocks=[
                Block(
                    b["heading"],
                    int(b["level"]),
                    b["body"],
                    b.get("key") if b.get("key") in SECTION_KEYS else None,
                )
                for b in data.get("blocks") or []
            ],
            title=data.get("title") or "",
            preamble=data.get("preamble") or "",
        )


def _filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        stripped = value.strip()
        return bool(stripped) and "[More Information Needed]" not in stripped
    if isinstance(value, list | dict | tuple):
        return bool(value)
    return True


@dataclass(frozen=True)
class Completeness:
    score: int  # 0..100
    missing: list[str]
    present: list[str]


def completeness(card: Card) -> Completeness:
    """How much of the checklist the card fills, and what is missing."""
    total = sum(weight for _, _, weight in CHECKLIST)
    sections = card.sections
    got, missing, present = 0, [], []
    for key, label, weight in CHECKLIST:
        value = card.metadata.get(key) if key in METADATA_FIELDS else sections.get(key)
        if _filled(value):
            got += weight
            present.append(label)
        else:
            missing.append(label)
    return Completeness(round(100 * got / total), missing, present)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")


def parse_readme(text: str) -> Card:
    """Read a Hugging Face dataset card (``README.md``)."""
    card = Card()
    body = text
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            metadata = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 2}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            raise CardError(f"the card's YAML front matter is not valid{where}: {problem}.") from None
        if not isinstance(metadata, dict):
            raise CardError("the card's YAML front matter is not a mapping of fields.")
        card.metadata = metadata
        body = text[match.end() :]
    preamble: list[str] = []
    current: Block | None = None
    in_code = False
    for line in body.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        heading = None if in_code else _HEADING.match(line)
        if heading and len(heading.group(1)) == 1 and not card.title and current is None:
            card.title = heading.group(2)
        elif heading:
            current = Block(heading.group(2), len(heading.group(1)), "")
            card.blocks.append(current)
        elif current is None:
            preamble.append(line)
        else:
            current.body += line + "\n"
    card.preamble = "\n".join(preamble).strip("\n")
    headings = {_normal(block.heading) for block in card.blocks}
    for block in card.blocks:
        block.body = block.body.strip("\n")
        name = _normal(block.heading)
        # Old cards put links under "Dataset Description" and the prose under
        # "Dataset Summary"; newer ones put the prose under "Dataset Description".
        if name == "dataset description" and "dataset summary" in headings:
            continue
        block.key = _HEADING_TO_KEY.get(name)
    return card


def _normal(heading: str) -> str:
    """'Citation [optional]' -> 'citation': how headings are matched to sections."""
    return heading.replace("[optional]", "").strip().lower()


def render_readme(card: Card, *, name: str = "") -> str:
    """Write a Hugging Face dataset card: YAML front matter, then the sections."""
    parts = []
    if card.metadata:
        front = yaml.safe_dump(card.metadata, sort_keys=False, allow_unicode=True, default_flow_style=False)
        parts.append(f"---\n{front}---\n")
    title = card.title or f"Dataset Card for {card.metadata.get('pretty_name') or name}".strip()
    parts.append(f"# {title}\n")
    if card.preamble:
        parts.append(card.preamble + "\n")
    for block in card.blocks:
        heading = f"{'#' * block.level} {block.heading}\n"
        parts.append(f"{heading}\n{block.body}\n" if block.body else heading)
    return "\n".join(parts)


def size_category(rows: int) -> str:
    """The Hugging Face size category of a dataset with `rows` examples."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, label in bounds:
        if rows < bound:
            return label
    return "n>1T" if rows >= 10**12 else "1B<n<10B"
