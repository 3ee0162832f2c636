"""The layer browser, in the spirit of dive: one directory at a time, per layer or merged, plus the
graveyard (everything deleted or shadowed by a later layer, still recoverable from its lower layer).

A directory listing is two queries whatever the size of the tree: an aggregate that groups every entry
below the directory by its next path segment (children, with subtree counts and sizes), and the direct
records of the children on the page.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from django.db.models import Case as SqlCase
from django.db.models import Count, F, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import StrIndex, Substr

from scanner.models import FileRecord, Image, Layer

VIEWS = ("layer", "merged")
PAGE = 500


def normalise(path: str | None) -> str:
    """A clean absolute directory path ("/", "/usr/bin"); never touches a filesystem."""
    path = "/" + (path or "").strip().lstrip("/")
    path = posixpath.normpath(path)
    return "/" if path in ("/", "//", ".") else path.rstrip("/")


def crumbs(path: str) -> list[tuple[str, str]]:
    """[(name, path)] from the root to ``path``."""
    out = [("/", "/")]
    current = ""
    for part in [p for p in path.split("/") if p]:
        current += "/" + part
        out.append((part, current))
    return out


@dataclass
class Child:
    name: str
    path: str
    is_dir: bool
    entries: int = 0  # records at or below this path
    size: int = 0
    added: int = 0
    modified: int = 0
    deleted: int = 0
    hidden: int = 0  # records in the graveyard at or below this path
    flagged: int = 0
    record: FileRecord | None = None
    records: list[FileRecord] = field(default_factory=list)

    @property
    def change(self) -> str:
        return self.record.change if self.record else ""


def base_records(image: Image, view: str, layer: Layer | None):
    records = FileRecord.objects.filter(image=image)
    if view == "layer" and layer is not None:
        return records.filter(layer=layer)
    return records.filter(visible=True)


def list_directory(
    image: Image, *, view: str, layer: Layer | None, path: str, offset: int = 0, limit: int = PAGE
) -> tuple[list[Child], bool]:
    """The children of ``path``: directories first, then files, by name. Returns (children, more)."""
    prefix = "/" if path == "/" else path + "/"
    start = len(prefix) + 1
    records = base_records(image, view, layer)
    below = (
        records.filter(path__startswith=prefix)
        # startswith is LIKE, which SQLite compares case-insensitively: insist on the exact prefix.
        .annotate(head=Substr("path", 1, len(prefix)))
        .filter(head=prefix)
        .annotate(rest=Substr("path", start))
        .annotate(slash=StrIndex("rest", Value("/")))
        .annotate(child=SqlCase(When(slash=0, then="rest"), default=Substr("rest", 1, F("slash") - 1)))
        .exclude(rest="")
    )
    groups = (
        below.values("child")
        .annotate(
            entries=Count("pk"),
            size=Sum("size"),
            added=Count("pk", filter=Q(change="added")),
            modified=Count("pk", filter=Q(change="modified")),
            deleted=Count("pk", filter=Q(change="deleted")),
            hidden=Count("pk", filter=Q(hidden_by__isnull=False)),
            flagged=Count("pk", filter=Q(flags__contains="setuid") | Q(flags__contains="hidden")),
            deeper=Max(SqlCase(When(slash=0, then=Value(0)), default=Value(1), output_field=IntegerField())),
        )
        .order_by("-deeper", "child")
    )
    rows = list(groups[offset : offset + limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    children: dict[str, Child] = {}
    for row in rows:
        name = row["child"].rstrip("/")
        if not name:
            continue
        child_path = prefix + name
        child = children.get(name)
        if child is None:
            child = children[name] = Child(name=name, path=child_path, is_dir=bool(row["deeper"]))
        child.entries += row["entries"]
        child.size += row["size"] or 0
        child.added += row["added"]
        child.modified += row["modified"]
        child.deleted += row["deleted"]
        child.hidden += row["hidden"]
        child.flagged += row["flagged"]
        child.is_dir = child.is_dir or bool(row["deeper"])
    if children:
        direct = (
            records.filter(path__in=[c.path for c in children.values()])
            .select_related("layer")
            .order_by("path", "layer__index")
        )
        for record in direct:
            child = children.get(record.path[len(prefix) :])
            if child is None:
                continue
            child.records.append(record)
            child.record = record  # the top-most one (ordered by layer)
            if record.type == "dir":
                child.is_dir = True
    ordered = sorted(children.values(), key=lambda c: (not c.is_dir, c.name))
    return ordered, more


def path_history(image: Image, path: str):
    """Every record of one path across the layers, bottom layer first."""
    return (
        FileRecord.objects.filter(image=image, path=path)
        .select_related("layer")
        .order_by("layer__index", "pk")
    )


def graveyard(image: Image, *, q: str = ""):
    records = FileRecord.objects.filter(image=image, hidden_by__isnull=False).select_related("layer")
    if q:
        records = records.filter(path__contains=q)
    return records.order_by("path", "layer__index", "pk")
