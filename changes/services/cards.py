"""What a change does to the dataset card: the source head's card against the
target head's, in words a steward reads on the change request's page."""

from __future__ import annotations

from dataclasses import dataclass, field

from cards.domain.cards import completeness
from cards.services.cards import card_of
from catalog.models import Version


@dataclass(frozen=True, slots=True)
class CardChange:
    """How the source's card differs from the target's (empty: the same card)."""

    changes: list[str] = field(default_factory=list)
    score_before: int | None = None
    score_after: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def card_change(head: Version, target_head: Version) -> CardChange:
    """Compare the cards of the two heads; reads nothing when they share one."""
    if head.card_id == target_head.card_id:
        return CardChange()
    before, after = card_of(target_head), card_of(head)
    changes: list[str] = []
    if before.title != after.title:
        changes.append(f"title: {before.title or '(none)'} → {after.title or '(none)'}")
    for key in sorted(set(before.metadata) | set(after.metadata)):
        old, new = before.metadata.get(key), after.metadata.get(key)
        if old != new:
            how = "added" if old is None else ("removed" if new is None else "changed")
            changes.append(f"front matter {key}: {how}")
    old_sections, new_sections = before.sections, after.sections
    for key in sorted(set(old_sections) | set(new_sections)):
        old_text, new_text = old_sections.get(key), new_sections.get(key)
        if old_text != new_text:
            how = "written" if old_text is None else ("removed" if new_text is None else "rewritten")
            changes.append(f"section {key.replace('_', ' ')}: {how}")
    if not changes:
        changes.append("its text is the same, written differently")
    return CardChange(changes, completeness(before).score, completeness(after).score)
