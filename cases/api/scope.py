"""Per-case authorisation for the whole API, in one place.

``visible(user, queryset)`` is the only way an API view reaches a row: it keeps the rows that belong to a
case the caller is a member of (``Case.objects.visible_to``). Everything else is, for the caller, not
there: a 404, never a 403. ``case_and_role`` is the same filter on cases, plus the caller's role on the
case, which decides what a member may do (viewer: read; investigator: write; lead: manage the case and
its members) — an insufficient role is a 403.
"""

from __future__ import annotations

from django.db.models import Model, OuterRef, QuerySet, Subquery
from rest_framework.exceptions import NotFound, PermissionDenied

from scanner.models import FileRecord, Finding, Image, Layer, ScanRun

from ..models import (
    Case,
    CaseMembership,
    Checklist,
    ChecklistItem,
    CustodyEvent,
    Evidence,
    ExportRecord,
    FindingComment,
    Note,
    NoteRevision,
    Role,
    TimelineEvent,
)

# How each model reaches its case.
CASE_PATH: dict[type[Model], str] = {
    Case: "pk",
    CaseMembership: "case",
    Evidence: "case",
    CustodyEvent: "evidence__case",
    ScanRun: "evidence__case",
    Image: "scan__evidence__case",
    Layer: "image__scan__evidence__case",
    FileRecord: "image__scan__evidence__case",
    Finding: "case",
    FindingComment: "finding__case",
    TimelineEvent: "case",
    Note: "case",
    NoteRevision: "note__case",
    Checklist: "case",
    ChecklistItem: "checklist__case",
    ExportRecord: "case",
}

WRITE_ROLES = (Role.LEAD, Role.INVESTIGATOR)


def visible_case_ids(user) -> QuerySet:
    """The ids of the cases ``user`` may see, as a subquery (never evaluated in Python)."""
    return Case.objects.visible_to(user).values("pk")


def visible(user, queryset: QuerySet, case: Case | int | None = None) -> QuerySet:
    """``queryset`` narrowed to rows of cases ``user`` is a member of (and to ``case``, if given)."""
    path = CASE_PATH[queryset.model]
    field = "pk" if path == "pk" else f"{path}_id"
    queryset = queryset.filter(**{f"{field}__in": visible_case_ids(user)})
    if case is not None:
        queryset = queryset.filter(**{field: case.pk if isinstance(case, Case) else case})
    return queryset


def role_subquery(user) -> Subquery:
    """The caller's role on the outer case, as an annotation (no extra query per case)."""
    return Subquery(CaseMembership.objects.filter(case=OuterRef("pk"), user=user).values("role")[:1])


def cases_for(user) -> QuerySet:
    """Visible cases, each annotated with ``my_role``."""
    if not getattr(user, "is_authenticated", False):
        return Case.objects.none()
    return visible(user, Case.objects.all()).select_related("lead").annotate(my_role=role_subquery(user))


def case_and_role(user, case_id, *, write: bool = False, lead: bool = False) -> tuple[Case, str]:
    """The case and the caller's role on it; 404 for a non-member, 403 when the role is not enough."""
    try:
        case = cases_for(user).get(pk=int(case_id))
    except (Case.DoesNotExist, TypeError, ValueError):
        raise NotFound("Not found.") from None
    require(case.my_role, write=write, lead=lead)
    return case, case.my_role


def get_visible(user, queryset: QuerySet, **lookup) -> Model:
    """One visible row, or 404."""
    try:
        return visible(user, queryset).get(**lookup)
    except (queryset.model.DoesNotExist, TypeError, ValueError):
        raise NotFound("Not found.") from None


def role_on(user, case_id: int) -> str | None:
    return CaseMembership.objects.filter(case_id=case_id, user=user).values_list("role", flat=True).first()


def require(role: str | None, *, write: bool = False, lead: bool = False) -> None:
    if lead and role != Role.LEAD:
        raise PermissionDenied("Only the case lead can do this.")
    if write and role not in WRITE_ROLES:
        raise PermissionDenied("Viewers have read-only access to this case.")
