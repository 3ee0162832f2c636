"""Template filters for the post-mortem document (templates/postmortem/)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django import template

from ..workspace.rendering import render_markdown

register = template.Library()


@register.filter
def utc(value) -> str:
    """``2026-03-14 09:26:53 UTC``: every time in the document, in one unambiguous form."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter
def utcshort(value) -> str:
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


@register.filter
def utcsec(value) -> str:
    """``2026-03-14 09:26:53`` (in a column headed UTC)."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def day(value) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return ""


@register.filter
def md(text: str):
    """Markdown written by investigators, sanitised (``cases.workspace.rendering``)."""
    return render_markdown(text or "")


@register.filter
def get(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def iec(size) -> str:
    """A byte count people can read (1.5 MiB), exact bytes below 1 KiB."""
    try:
        n = float(size or 0)
    except (TypeError, ValueError):
        return ""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    return ""


@register.filter
def thousands(value) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return ""


@register.filter
def capital(value) -> str:
    text = str(value or "")
    return text[:1].upper() + text[1:]
