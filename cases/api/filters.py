"""Query-parameter filters shared by the API lists, the pivot and the search page."""

from __future__ import annotations

import re

from django.db import connection
from django.db.models import Case as CaseWhen
from django.db.models import F, IntegerField, Q, Value, When
from django.db.models.functions import Collate
from django.db.models.lookups import Exact, StartsWith
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError

from scanner.models import TriageStatus

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
FINDING_ORDERINGS = {
    "severity": ("-severity_rank", "pk"),
    "-severity": ("severity_rank", "pk"),
    "rule_id": ("rule_id", "pk"),
    "-rule_id": ("-rule_id", "-pk"),
    "path": ("path", "pk"),
    "-path": ("-path", "-pk"),
    "layer": ("layer__index", "pk"),
    "-layer": ("-layer__index", "-pk"),
    "status": ("status", "pk"),
    "-status": ("-status", "-pk"),
    "created": ("created_at", "pk"),
    "-created": ("-created_at", "-pk"),
}
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$", re.IGNORECASE)


def csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def sha256_value(value: str, field: str = "sha256") -> str:
    """A SHA-256 hex digest (``sha256:`` prefix and upper case allowed), lower-cased; 400 otherwise."""
    match = _SHA256.match((value or "").strip())
    if not match:
        raise ValidationError({field: ["Expected 64 hex digits, optionally prefixed with sha256:."]})
    return match.group(1).lower()


def int_param(params, name: str, *, minimum: int = 0) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValidationError({name: ["A whole number is required."]}) from None
    if number < minimum or number > 2**62:
        raise ValidationError({name: [f"Out of range (at least {minimum})."]})
    return number


def bool_param(params, name: str) -> bool | None:
    value = (params.get(name) or "").lower()
    if value in ("", None):
        return None
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValidationError({name: ["Use true or false."]})


def path_expr(field: str = "path"):
    """``field`` as the pivot compares and orders it: bytewise. On PostgreSQL ``field COLLATE "C"``, the
    expression the pivot's path indexes are built on (migration scanner 0004); SQLite compares text
    bytewise already."""
    if connection.vendor == "postgresql":
        return Collate(F(field), "C")
    return F(field)


def path_equals(value: str, field: str = "path") -> Exact:
    return Exact(path_expr(field), value)


def prefix_q(prefix: str, field: str = "path") -> Q:
    """Rows whose ``field`` starts with ``prefix``, exactly (case-sensitive; ``%`` and ``_`` are not
    wildcards) and index-friendly.

    PostgreSQL: ``field COLLATE "C" LIKE 'prefix%'``, which the planner turns into a range scan of the
    ``COLLATE "C"`` index. SQLite's LIKE ignores ASCII case and is never indexed, so there it is the range
    ``prefix <= field < next(prefix)`` under SQLite's binary collation, which an index on ``field`` serves.
    """
    if not prefix:
        return Q()
    if connection.vendor == "postgresql":
        return Q(StartsWith(path_expr(field), prefix))
    if ord(prefix[-1]) >= 0x10FFFF:
        return Q(**{f"{field}__gte": prefix}) & Q(StartsWith(F(field), prefix))
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return Q(**{f"{field}__gte": prefix, f"{field}__lt": upper})


def no_nul(value: str, name: str) -> str:
    """Text that a database can compare: PostgreSQL refuses NUL characters in parameters."""
    if "\x00" in value:
        raise ValidationError({name: ["NUL characters are not allowed."]})
    return value


def filter_findings(queryset, params):
    """Filters shared by every findings list: severity, rule_id, status (comma lists), layer (index),
    path prefix, evidence, scan, assignee; then the ordering."""
    if severities := csv(params.get("severity")):
        queryset = queryset.filter(severity__in=severities)
    if rules := csv(params.get("rule_id")):
        queryset = queryset.filter(rule_id__in=[no_nul(r, "rule_id") for r in rules])
    if statuses := csv(params.get("status")):
        queryset = queryset.filter(status__in=statuses)
    if (layer := int_param(params, "layer")) is not None:
        queryset = queryset.filter(layer__index=layer)
    if prefix := params.get("path"):
        queryset = queryset.filter(prefix_q(no_nul(prefix, "path")))
    if (evidence := int_param(params, "evidence")) is not None:
        queryset = queryset.filter(scan__evidence_id=evidence)
    if (scan := int_param(params, "scan")) is not None:
        queryset = queryset.filter(scan_id=scan)
    if assignee := params.get("assignee"):
        if assignee == "none":
            queryset = queryset.filter(assignee__isnull=True)
        else:
            queryset = queryset.filter(assignee__username=no_nul(assignee, "assignee"))
    rank = CaseWhen(
        *(When(severity=name, then=Value(value)) for name, value in SEVERITY_RANK.items()),
        default=Value(-1),
        output_field=IntegerField(),
    )
    ordering = params.get("ordering") or "severity"
    if ordering not in FINDING_ORDERINGS:
        raise ValidationError({"ordering": [f"One of: {', '.join(FINDING_ORDERINGS)}."]})
    return queryset.annotate(severity_rank=rank).order_by(*FINDING_ORDERINGS[ordering])


FINDING_FILTERS = [
    OpenApiParameter("severity", str, description="comma-separated: critical,high,medium,low,info"),
    OpenApiParameter("rule_id", str, description="comma-separated rule ids"),
    OpenApiParameter("status", str, description="comma-separated: " + ",".join(TriageStatus.values)),
    OpenApiParameter("layer", int, description="layer index (0 = the base layer)"),
    OpenApiParameter("path", str, description="path prefix, e.g. /usr/bin/"),
    OpenApiParameter("evidence", int, description="only findings of this evidence item"),
    OpenApiParameter("scan", int, description="only findings of this scan"),
    OpenApiParameter("assignee", str, description="a username, or `none` for unassigned"),
    OpenApiParameter("ordering", str, enum=list(FINDING_ORDERINGS), description="default: severity"),
]
