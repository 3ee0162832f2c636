"""Template filters for the case workspace."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django import template

from ..workspace.redact import redact_text
from ..workspace.rendering import render_markdown

register = template.Library()

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


@register.filter(name="markdown")
def markdown_filter(text: str):
    return render_markdown(text)


@register.filter
def redact(text: str) -> str:
    """Mask credentials in attacker-controlled text; the result is still escaped by the template."""
    return redact_text(text or "")


@register.filter
def octal_mode(mode: int) -> str:
    return f"{int(mode or 0) & 0o7777:04o}"


@register.filter
def basename(path: str) -> str:
    return (path or "").rstrip("/").rsplit("/", 1)[-1] or "/"


@register.filter
def dirname(path: str) -> str:
    head = (path or "").rstrip("/").rsplit("/", 1)[0]
    return head or "/"


@register.filter
def flag_list(flags: str) -> list[str]:
    return (flags or "").split()


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters changed (``None`` or "" removes one)."""
    params = context["request"].GET.copy()
    if "page" not in changes:
        params.pop("page", None)  # a new filter or sort starts at page one
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def qs(**params) -> str:
    """A query string from keyword arguments, skipping empty values."""
    return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


@register.filter
def get_title(templates: dict, slug: str) -> str:
    template = templates.get(slug)
    return template.title if template else slug


@register.filter
def compact_json(value) -> str:
    """Audit data for people: JSON without the noise of Python reprs."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
