"""Template helpers for the dashboard: sizes, relative dates, roles."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from catalog import permissions
from catalog.domain.formatting import human_bytes

register = template.Library()


@register.filter(name="bytes")
def bytes_filter(value: int | None) -> str:
    """Human-readable size, binary units."""
    return "—" if value is None or value == "" else human_bytes(int(value))


@register.filter
def bytes_delta(value: int | None) -> str:
    """A signed size change: '+1.5 KiB', '−200 B', '0 B'."""
    if value is None or value == "":
        return "—"
    value = int(value)
    if value == 0:
        return "0 B"
    return ("+" if value > 0 else "−") + human_bytes(abs(value))


@register.filter
def sentence(value: str) -> str:
    """Upper-case the first letter (service errors start in lower case)."""
    text = str(value)
    return text[:1].upper() + text[1:]


def relative(moment: datetime, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', 'yesterday', '4 days ago', '12 Mar',
    '12 Mar 2024': short enough for a table cell, exact enough to scan."""
    now = now or timezone.now()
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "just now" if seconds > -60 else timezone.localtime(moment).strftime("%-d %b %Y")
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = (timezone.localdate(now) - timezone.localdate(moment)).days
    if days <= 1:
        return "yesterday"
    if days < 30:
        return f"{days} days ago"
    local = timezone.localtime(moment)
    if local.year == timezone.localtime(now).year:
        return local.strftime("%-d %b")
    return local.strftime("%-d %b %Y")


@register.simple_tag
def when(moment: datetime | None) -> str:
    """A relative date with the exact time on hover (and for screen readers)."""
    if moment is None:
        return "—"
    exact = timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', moment.isoformat(), exact, relative(moment)
    )


@register.simple_tag
def roles_of(user) -> list[str]:
    """The user's roles, strongest first, for the header."""
    held = permissions.roles_of(user)
    return [role for role in reversed(permissions.ROLES) if role in held]


@register.filter
def is_admin(user) -> bool:
    return permissions.is_admin(user)


@register.filter
def short(digest: str, length: int = 12) -> str:
    return (digest or "")[: int(length)]


@register.filter
def plural(count: int, word: str) -> str:
    """'1 file', '3 files'; 'version' -> 'versions'."""
    count = int(count or 0)
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


@register.filter
def dollars(amount) -> str:
    """An amount in dollars to the cent; one that rounds to nothing but is not
    nothing (a small store) says so, rather than claiming it is free."""
    from decimal import ROUND_HALF_UP, Decimal

    value = Decimal(str(amount or 0))
    if Decimal(0) < value < Decimal("0.005"):
        return "under $0.01"
    return f"${value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"
