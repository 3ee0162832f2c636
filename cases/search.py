"""The cross-case pivot: file records, findings and evidence matching a SHA-256, a path (exact or prefix)
or a rule id, across every case the caller is a member of — and nothing else.

Used by ``GET /api/search/`` and the search page (``/search/``, the box in the top bar). Every queryset
goes through :func:`cases.api.scope.visible`, the API's one visibility rule. The lookups are served by
indexes: ``FileRecord.sha256``, ``Finding.sha256``, ``Evidence.sha256``, ``Finding.rule_id`` (their own),
and ``path`` on file records and findings (migration ``scanner.0004_pivot_path_indexes``: on PostgreSQL a
B-tree on ``path COLLATE "C"``, which serves ``=``, ``LIKE 'prefix%'`` and the ordering by path; on SQLite a
plain index, served by the range that :func:`cases.api.filters.prefix_q` turns a prefix into). Results are
ordered by path (bytewise), then id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import ValidationError

from scanner.models import FileRecord, Finding

from .api.filters import no_nul, path_equals, path_expr, prefix_q, sha256_value
from .api.scope import visible
from .models import Evidence

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_*-]+)+$")


@dataclass(frozen=True)
class Pivot:
    sha256: str = ""
    path: str = ""  # exact
    path_prefix: str = ""
    rule_id: str = ""

    @property
    def empty(self) -> bool:
        return not (self.sha256 or self.path or self.path_prefix or self.rule_id)

    @classmethod
    def from_params(cls, params) -> Pivot:
        """From ``?sha256=&path=&path_prefix=&rule_id=`` (400 for a malformed value or none at all)."""
        sha = params.get("sha256", "").strip()
        pivot = cls(
            sha256=sha256_value(sha) if sha else "",
            path=no_nul(params.get("path", ""), "path")[:4096],
            path_prefix=no_nul(params.get("path_prefix", ""), "path_prefix")[:4096],
            rule_id=no_nul(params.get("rule_id", "").strip(), "rule_id")[:64],
        )
        if pivot.empty:
            raise ValidationError({"non_field_errors": ["Give sha256, path, path_prefix or rule_id."]})
        return pivot

    @classmethod
    def from_text(cls, text: str) -> Pivot:
        """What a person types in the search box: a SHA-256 (``sha256:`` optional), an absolute path (a
        trailing ``/`` or ``*`` makes it a prefix) or a rule id."""
        text = (text or "").replace("\x00", "").strip()[:4096]
        if not text:
            return cls()
        if re.fullmatch(r"(?:sha256:)?[0-9a-fA-F]{64}", text):
            return cls(sha256=sha256_value(text))
        if text.startswith("/"):
            if text.endswith("*"):
                return cls(path_prefix=text[:-1])
            if text.endswith("/") and text != "/":
                return cls(path_prefix=text)
            return cls(path=text)
        if RULE_ID.match(text):
            return cls(rule_id=text)
        return cls(path_prefix="/" + text.lstrip("/")) if "/" in text else cls(rule_id=text)

    def describe(self) -> str:
        parts = []
        if self.sha256:
            parts.append(f"SHA-256 {self.sha256}")
        if self.path:
            parts.append(f"path {self.path}")
        if self.path_prefix:
            parts.append(f"paths under {self.path_prefix}")
        if self.rule_id:
            parts.append(f"rule {self.rule_id}")
        return ", ".join(parts)


def _path_filter(pivot: Pivot) -> Q:
    q = Q()
    if pivot.path:
        q &= Q(path_equals(pivot.path))
    if pivot.path_prefix:
        q &= prefix_q(pivot.path_prefix)
    return q


def files(user, pivot: Pivot) -> QuerySet:
    """File records (every layer, the graveyard included) with that content or path."""
    if pivot.rule_id and not (pivot.sha256 or pivot.path or pivot.path_prefix):
        return FileRecord.objects.none()  # a rule id names findings, not files
    records = FileRecord.objects.all()
    if pivot.sha256:
        records = records.filter(sha256=pivot.sha256)
    records = records.filter(_path_filter(pivot))
    return (
        visible(user, records)
        .select_related("layer", "image__scan__evidence__case")
        .defer("image__config", "image__scan__stats", "image__scan__error")
        .order_by(path_expr(), "pk")
    )


def findings(user, pivot: Pivot) -> QuerySet:
    found = Finding.objects.all()
    if pivot.sha256:
        found = found.filter(sha256=pivot.sha256)
    if pivot.rule_id:
        found = found.filter(rule_id=pivot.rule_id)
    found = found.filter(_path_filter(pivot))
    return (
        visible(user, found)
        .select_related("case", "layer", "image", "scan", "assignee", "triaged_by")
        .defer("image__config", "scan__stats")
        .order_by(path_expr(), "pk")
    )


def evidence(user, pivot: Pivot) -> QuerySet:
    """Evidence items that are the SHA-256 themselves, or hold a matching file record or finding."""
    from django.db.models import Prefetch

    from scanner.models import ScanRun

    holds = Q(pk__in=findings(user, pivot).order_by().values("scan__evidence_id"))
    if not (pivot.rule_id and not (pivot.sha256 or pivot.path or pivot.path_prefix)):
        holds |= Q(pk__in=files(user, pivot).order_by().values("image__scan__evidence_id"))
    if pivot.sha256:
        holds |= Q(sha256=pivot.sha256)
    return (
        visible(user, Evidence.objects.filter(holds))
        .select_related("case", "uploaded_by")
        .prefetch_related(Prefetch("scans", queryset=ScanRun.objects.order_by("-queued_at", "-pk")))
        .order_by("-uploaded_at", "-pk")
    )


PAGE_LIMIT = 100


@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    """The search box's page: the same pivot as the API, the first 100 of each kind with their counts."""
    text = request.GET.get("q", "")
    pivot = Pivot.from_text(text)
    context: dict = {"q": text, "search_q": text, "pivot": pivot, "searched": not pivot.empty}
    if not pivot.empty:
        file_qs, finding_qs, evidence_qs = (
            files(request.user, pivot),
            findings(request.user, pivot),
            evidence(request.user, pivot),
        )
        context.update(
            files=list(file_qs[:PAGE_LIMIT]),
            file_count=file_qs.count(),
            findings=list(finding_qs[:PAGE_LIMIT]),
            finding_count=finding_qs.count(),
            evidence=list(evidence_qs[:PAGE_LIMIT]),
            evidence_count=evidence_qs.count(),
            limit=PAGE_LIMIT,
        )
    return render(request, "cases/search.html", context)
