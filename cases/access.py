"""Per-case authorisation for the web views: a case a user is not a member of does not exist (404)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404

from .models import Case, CaseMembership, Role

CAN_WRITE = (Role.LEAD, Role.INVESTIGATOR)


def get_case_for(user, case_id: int) -> tuple[Case, str]:
    """The case and the user's role on it, or 404 when the user is not a member."""
    case = get_object_or_404(Case.objects.select_related("lead"), pk=case_id)
    role = CaseMembership.objects.filter(case=case, user=user).values_list("role", flat=True).first()
    if role is None:
        raise Http404("No such case")
    return case, role
