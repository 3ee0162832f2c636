"""Who may do what on a case. Visibility is decided by ``cases.access.get_case_for`` (non-members: 404);
this module adds the role checks (insufficient role: 403).

lead          everything: manage members, close and reopen, edit title and severity
investigator  upload and re-verify evidence, triage findings, edit the narrative, notes, timeline,
              checklists, recover files from layers, move the status between open and recovered
viewer        read only
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from ..access import CAN_WRITE, get_case_for
from ..models import Case, Role


def can_write(role: str) -> bool:
    return role in CAN_WRITE


def is_lead(role: str) -> bool:
    return role == Role.LEAD


def case_view(*, write: bool = False, lead: bool = False) -> Callable:
    """Decorate a view taking ``(request, case, role, ...)``; it is reached by ``(request, case_id, ...)``."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, case_id: int, *args, **kwargs) -> HttpResponse:
            case, role = get_case_for(request.user, case_id)
            if lead and not is_lead(role):
                raise PermissionDenied("Only the case lead can do this.")
            if write and not can_write(role):
                raise PermissionDenied("Viewers have read-only access to this case.")
            return view(request, case, role, *args, **kwargs)

        return wrapper

    return decorate


def require_write(role: str) -> None:
    if not can_write(role):
        raise PermissionDenied("Viewers have read-only access to this case.")


def require_lead(role: str) -> None:
    if not is_lead(role):
        raise PermissionDenied("Only the case lead can do this.")


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


__all__ = ["Case", "can_write", "case_view", "is_htmx", "is_lead", "require_lead", "require_write"]
