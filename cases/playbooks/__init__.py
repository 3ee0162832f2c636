"""Playbooks shipped as data: checklist templates and case templates (YAML files in this folder).

Checklist template::

    kind: checklist
    slug: registry-purge
    title: Registry purge
    description: ...
    items:
      - A plain item
      - text: "Delete tag {tag} from the registry"   # one item per tag of the case's images
        for_each: tag                                # tag | digest
        if_none: What to write when the case has no scanned image yet

Case template::

    kind: case-template
    slug: poisoned-image
    name: Poisoned image in production
    severity: critical
    checklists: [key-rotation, registry-purge]
    timeline_headings: [Detection, Containment]

Admin-managed case templates (``cases.models.CaseTemplate``) are offered next to the built-in ones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ItemTemplate:
    text: str
    for_each: str = ""  # "" | tag | digest
    if_none: str = ""


@dataclass(frozen=True)
class ChecklistTemplate:
    slug: str
    title: str
    description: str = ""
    items: tuple[ItemTemplate, ...] = ()


@dataclass(frozen=True)
class CaseTemplateSpec:
    key: str  # "builtin:<slug>" or "db:<slug>"
    slug: str
    name: str
    description: str = ""
    severity: str = "medium"
    checklists: tuple[str, ...] = ()
    timeline_headings: tuple[str, ...] = field(default_factory=tuple)


def _load(kind: str) -> list[dict]:
    docs = []
    for path in sorted(HERE.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("kind") == kind:
            docs.append(doc)
    return docs


def _item(raw) -> ItemTemplate:
    if isinstance(raw, str):
        return ItemTemplate(text=raw)
    for_each = raw.get("for_each", "")
    if for_each not in ("", "tag", "digest"):
        raise ValueError(f"unknown for_each {for_each!r} in a checklist template")
    return ItemTemplate(text=raw["text"], for_each=for_each, if_none=raw.get("if_none", ""))


@functools.cache
def checklist_templates() -> dict[str, ChecklistTemplate]:
    templates = {}
    for doc in _load("checklist"):
        templates[doc["slug"]] = ChecklistTemplate(
            slug=doc["slug"],
            title=doc["title"],
            description=doc.get("description", ""),
            items=tuple(_item(raw) for raw in doc.get("items", [])),
        )
    return templates


@functools.cache
def builtin_case_templates() -> tuple[CaseTemplateSpec, ...]:
    return tuple(
        CaseTemplateSpec(
            key=f"builtin:{doc['slug']}",
            slug=doc["slug"],
            name=doc["name"],
            description=doc.get("description", ""),
            severity=doc.get("severity", "medium"),
            checklists=tuple(doc.get("checklists", [])),
            timeline_headings=tuple(doc.get("timeline_headings", [])),
        )
        for doc in _load("case-template")
    )


def case_templates() -> list[CaseTemplateSpec]:
    """Built-in templates, then the admin-managed ones."""
    from ..models import CaseTemplate

    specs = list(builtin_case_templates())
    for row in CaseTemplate.objects.all():
        specs.append(
            CaseTemplateSpec(
                key=f"db:{row.slug}",
                slug=row.slug,
                name=row.name,
                description=row.description,
                severity=row.severity,
                checklists=tuple(row.checklists or []),
                timeline_headings=tuple(row.timeline_headings or []),
            )
        )
    return specs


def find_case_template(key: str) -> CaseTemplateSpec | None:
    return next((spec for spec in case_templates() if spec.key == key), None)


def expand_items(template: ChecklistTemplate, *, tags: list[str], digests: list[str]) -> list[str]:
    """The item texts for a case: ``for_each`` items become one item per tag or digest of its images."""
    texts: list[str] = []
    for item in template.items:
        if item.for_each == "tag":
            values = tags
        elif item.for_each == "digest":
            values = digests
        else:
            texts.append(item.text)
            continue
        if values:
            texts.extend(item.text.format(**{item.for_each: value}) for value in values)
        elif item.if_none:
            texts.append(item.if_none)
    return [text[:500] for text in texts]
