"""Draw a laid-out lineage graph as one self-contained SVG document.

Server-side, no JavaScript: every node is an ``<a>`` link, colours say the kind,
a ``<title>`` carries the full label for hover. The same function serves the
page (inline) and the SVG export (a file), so what is exported is what was seen.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from html import escape

from lineage.domain.graph import NODE_HEIGHT, NODE_WIDTH, Layout, PlacedNode

# Calm fills with a darker stroke of the same hue; kinds not listed (a future
# "model" kind before it gets its own colour) fall back to grey.
KIND_STYLES: dict[str, tuple[str, str, str]] = {
    # kind: (fill, stroke, caption)
    "source": ("#fbf3e4", "#b7862f", "source"),
    "version": ("#e7f0f6", "#2f6f8f", "dataset version"),
    "run": ("#edf4ea", "#4f7f40", "run"),
    "model": ("#f2ecf7", "#7356a0", "model version"),
    "more": ("#ffffff", "#9aa5b1", ""),
}
_FALLBACK = ("#f3f4f6", "#7b8794", "")
_MAX_LABEL = 24


def _clip(text: str, limit: int = _MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_svg(
    placed: Layout,
    href: Callable[[Hashable], str | None],
    selected: Hashable | None = None,
) -> str:
    """The SVG markup, valid inline in a page and as a file on its own.
    `href(node_id)` gives each node's link (None: no link)."""
    width, height = max(placed.width, NODE_WIDTH + 32), max(placed.height, NODE_HEIGHT + 32)
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg"'
        f' class="lineage-graph" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}"'
        ' role="img" aria-label="lineage graph" font-family="system-ui, -apple-system, Segoe UI, sans-serif">',
        "<defs>"
        '<marker id="lineage-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9aa5b1"/></marker>'
        '<marker id="lineage-arrow-back" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0504d"/></marker>'
        "</defs>",
        '<g class="edges" fill="none">',
    ]
    for src, dst, closes_cycle in placed.edges:
        if src not in placed.nodes or dst not in placed.nodes:
            continue
        parts.append(_edge(placed.nodes[src], placed.nodes[dst], closes_cycle))
    parts.append("</g>")
    parts.append('<g class="nodes">')
    for node in placed.nodes.values():
        parts.append(_node(node, href(node.id), node.id == placed.focus, node.id == selected))
    parts.append("</g></svg>")
    return "".join(parts)


def _edge(src: PlacedNode, dst: PlacedNode, closes_cycle: bool) -> str:
    if closes_cycle or dst.layer <= src.layer:
        # Drawn as a loop below the boxes, so a cycle is visible, never hidden.
        x1, y1 = src.x + NODE_WIDTH / 2, src.y + NODE_HEIGHT
        x2, y2 = dst.x + NODE_WIDTH / 2, dst.y + NODE_HEIGHT
        drop = max(y1, y2) + 36
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{drop:.1f} {x2:.1f},{drop:.1f} {x2:.1f},{y2:.1f}"
        return (
            f'<path d="{path}" stroke="#c0504d" stroke-width="1.4" stroke-dasharray="5 4"'
            ' marker-end="url(#lineage-arrow-back)"><title>this edge closes a cycle</title></path>'
        )
    x1, y1 = src.x + NODE_WIDTH, src.y + NODE_HEIGHT / 2
    x2, y2 = dst.x, dst.y + NODE_HEIGHT / 2
    bend = max((x2 - x1) / 2, 24)
    path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2 - 2:.1f},{y2:.1f}"
    dashed = ' stroke-dasharray="3 3"' if "more" in (src.kind, dst.kind) else ""
    return f'<path d="{path}" stroke="#b6bec8" stroke-width="1.3"{dashed} marker-end="url(#lineage-arrow)"/>'


def _node(node: PlacedNode, link: str | None, is_focus: bool, is_selected: bool) -> str:
    fill, stroke, caption = KIND_STYLES.get(node.kind, _FALLBACK)
    stroke_width = 2.6 if is_focus else (2.0 if is_selected else 1.2)
    radius = 14 if node.kind == "run" else 4
    dash = ' stroke-dasharray="4 3"' if node.kind == "more" else ""
    title = escape(node.label + (f" — {node.sublabel}" if node.sublabel else ""))
    classes = (
        f"node node-{escape(node.kind)}"
        + (" focus" if is_focus else "")
        + (" selected" if is_selected else "")
    )
    body = [
        f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{NODE_WIDTH:.0f}" height="{NODE_HEIGHT:.0f}"'
        f' rx="{radius}" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"{dash}/>',
    ]
    text_x = node.x + 12
    if node.kind == "more":
        body.append(
            f'<text x="{node.x + NODE_WIDTH / 2:.1f}" y="{node.y + NODE_HEIGHT / 2 + 5:.1f}" text-anchor="middle"'
            f' font-size="13" fill="#52606d">{escape(node.label)}</text>'
        )
    else:
        small = node.sublabel or caption
        body.append(
            f'<text x="{text_x:.1f}" y="{node.y + 19:.1f}" font-size="12.5" fill="#1f2933"'
            f' font-weight="{600 if is_focus else 500}">{escape(_clip(node.label))}</text>'
        )
        body.append(
            f'<text x="{text_x:.1f}" y="{node.y + 36:.1f}" font-size="11" fill="#616e7c">'
            f"{escape(_clip(small, 30))}</text>"
        )
    inner = f"<title>{title}</title>" + "".join(body)
    data = f' data-node="{escape(str(node.id))}"'
    if link:
        return f'<a href="{escape(link)}" class="{classes}"{data}>{inner}</a>'
    return f'<g class="{classes}"{data}>{inner}</g>'
