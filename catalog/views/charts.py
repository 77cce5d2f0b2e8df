"""Small charts drawn on the server as SVG: no JavaScript, readable without colour.

Every chart has a title and text for each bar, so it reads the same to a screen
reader and on paper; colours only repeat what the labels say.
"""

from __future__ import annotations

from html import escape

from catalog.domain.tabular import LabelShift

_OLD, _NEW = "#9fb3c8", "#2f6f8f"


def label_shift_svg(shift: LabelShift, *, old_name: str, new_name: str, width: int = 640) -> str:
    """Grouped horizontal bars: each label's share before and after."""
    labels = shift.labels[:30]
    before, after = shift.proportions(shift.counts_a), shift.proportions(shift.counts_b)
    row, bar, left, top = 34, 12, 150, 34
    chart = width - left - 90
    height = top + row * len(labels) + 10
    title = f"Label distribution of {shift.column}: {old_name} and {new_name}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img"'
        f' aria-labelledby="chart-title" class="chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<rect x="{left}" y="6" width="10" height="10" fill="{_OLD}"/>'
        f'<text x="{left + 16}" y="15" font-size="12">{escape(old_name)}</text>',
        f'<rect x="{left + 120}" y="6" width="10" height="10" fill="{_NEW}"/>'
        f'<text x="{left + 136}" y="15" font-size="12">{escape(new_name)}</text>',
    ]
    for index, label in enumerate(labels):
        y = top + index * row
        name = label if len(label) <= 20 else label[:19] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + bar + 4}" font-size="12" text-anchor="end">{escape(name or "(empty)")}</text>'
        )
        for offset, share, colour, count in (
            (0, before[label], _OLD, shift.counts_a.get(label, 0)),
            (bar + 2, after[label], _NEW, shift.counts_b.get(label, 0)),
        ):
            length = max(share * chart, 1 if count else 0)
            parts.append(
                f'<rect x="{left}" y="{y + offset}" width="{length:.1f}" height="{bar}" fill="{colour}">'
                f"<title>{escape(label)}: {count:,} ({share:.1%})</title></rect>"
                f'<text x="{left + length + 4:.1f}" y="{y + offset + bar - 2}" font-size="11">{share:.1%}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
