from django import template

from catalog.formatting import human_bytes

register = template.Library()


@register.filter(name="bytes")
def bytes_filter(value: int | None) -> str:
    """Human-readable size, binary units."""
    return "—" if value is None or value == "" else human_bytes(int(value))
