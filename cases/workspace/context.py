"""What every tab of a case page needs: the case, the viewer's role and what it allows, the tab list."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from scanner.models import Finding

from ..models import Case
from .perms import can_write, is_lead

TABS = [
    ("overview", "Overview", "cases:detail"),
    ("evidence", "Evidence", "cases:evidence"),
    ("image", "Image", "cases:image"),
    ("findings", "Findings", "cases:findings"),
    ("timeline", "Timeline", "cases:timeline"),
    ("notes", "Notes", "cases:notes"),
    ("checklists", "Checklists", "cases:checklists"),
    ("audit", "Audit", "cases:audit"),
    ("postmortem", "Post-mortem", "cases:postmortem"),
]


def tab_context(case: Case, role: str, tab: str, **extra) -> dict:
    return {
        "case": case,
        "role": role,
        "tab": tab,
        "tabs": TABS,
        "can_write": can_write(role),
        "is_lead": is_lead(role),
        "open_findings": Finding.objects.filter(case=case, status="open").count(),
        **extra,
    }


def members(case: Case):
    """The users who are members of the case, by name (for owner and assignee choices)."""
    return list(
        get_user_model()
        .objects.filter(case_memberships__case=case)
        .order_by("username")
        .only("pk", "username")
    )
