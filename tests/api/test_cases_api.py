"""Cases and members: list with filters, create (with a template), retrieve, PATCH within role rules
(status transitions validated by the same rules as the UI), members managed by the lead only."""

from __future__ import annotations

import pytest

from cases.models import AuditEvent, Case, CaseMembership, CaseStatus, Checklist, Role, TimelineEvent

pytestmark = pytest.mark.django_db


def test_list_shows_my_role_and_filters(team, world):
    other = Case.open_case(lead=team.investigator, title="Phishing", severity="low")
    body = team.client("investigator").get("/api/cases/").json()
    roles = {c["key"]: c["role"] for c in body["results"]}
    assert roles == {world.case.key: "investigator", other.key: "lead"}
    assert team.client("investigator").get("/api/cases/", {"severity": "low"}).json()["count"] == 1
    assert team.client("investigator").get("/api/cases/", {"q": "miner"}).json()["count"] == 1
    assert team.client("outsider").get("/api/cases/").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }


def test_create_from_a_template(team):
    client = team.client("outsider")  # anyone may open a case; they become its lead
    response = client.post(
        "/api/cases/", {"title": "Leaked keys", "template": "builtin:leaked-credentials"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    case = Case.objects.get(pk=body["id"])
    assert body["role"] == "lead" and body["lead"] == "outsider-user" and body["status"] == "open"
    assert case.template == "builtin:leaked-credentials" and Checklist.objects.filter(case=case).exists()
    bad = client.post("/api/cases/", {"title": "x", "template": "nope"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"template": ["Unknown case template 'nope'."]}
    missing = client.post("/api/cases/", {}, format="json").json()
    assert missing["code"] == "required" and "title" in missing["errors"]


def test_patch_by_role(team, world):
    url = f"/api/cases/{world.case.pk}/"
    investigator = team.client("investigator")
    response = investigator.patch(
        url, {"status": "contained", "root_cause": "a leaked CI token"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "contained" and response.json()["root_cause"] == "a leaked CI token"
    assert TimelineEvent.objects.filter(case=world.case, kind="status").count() == 1
    assert AuditEvent.objects.filter(case=world.case, action="case.status").count() == 1
    # lead-only fields and transitions
    for body in (
        {"title": "renamed"},
        {"severity": "low"},
        {"status": "closed"},
        {"lead": "investigator-user"},
    ):
        denied = investigator.patch(url, body, format="json")
        assert denied.status_code == 403, body
        assert denied.json()["code"] == "permission_denied"
    # an unchanged lead-only value is not a change
    assert investigator.patch(url, {"title": world.case.title}, format="json").status_code == 200
    assert team.client("viewer").patch(url, {"summary": "x"}, format="json").status_code == 403
    assert team.client("outsider").patch(url, {"summary": "x"}, format="json").status_code == 404
    lead = team.client("lead")
    assert lead.patch(url, {"status": "closed", "title": "Done"}, format="json").json()["status"] == "closed"
    assert investigator.patch(url, {"status": "open"}, format="json").status_code == 403  # reopen: lead only
    invalid = lead.patch(url, {"status": "archived", "severity": "huge"}, format="json")
    assert invalid.status_code == 400 and set(invalid.json()["errors"]) == {"status", "severity"}
    assert lead.patch(url, {"lead": "outsider-user"}, format="json").status_code == 400  # not a member
    handed = lead.patch(url, {"lead": "investigator-user"}, format="json").json()
    assert handed["lead"] == "investigator-user"
    world.case.refresh_from_db()
    assert world.case.status == CaseStatus.CLOSED and world.case.title == "Done"


def test_members_are_managed_by_the_lead(team, world):
    url = f"/api/cases/{world.case.pk}/members/"
    listing = team.client("viewer").get(url).json()
    assert [(m["username"], m["role"], m["is_lead"]) for m in listing["results"]] == [
        ("investigator-user", "investigator", False),
        ("lead-user", "lead", True),
        ("viewer-user", "viewer", False),
    ]
    body = {"username": "outsider-user", "role": "viewer"}
    assert team.client("investigator").post(url, body, format="json").status_code == 403
    assert team.client("outsider").post(url, body, format="json").status_code == 404
    lead = team.client("lead")
    added = lead.post(url, body, format="json")
    assert added.status_code == 201 and added.json()["role"] == "viewer"
    again = lead.post(url, body, format="json")
    assert again.status_code == 400 and "already a member" in again.json()["detail"]
    assert lead.post(url, {"username": "nobody"}, format="json").json()["errors"] == {
        "username": ["No such user."]
    }
    assert team.client("outsider").get(url).status_code == 200  # now a member
    changed = lead.patch(url + "outsider-user/", {"role": "investigator"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "investigator"
    assert (
        team.client("investigator")
        .patch(url + "outsider-user/", {"role": "viewer"}, format="json")
        .status_code
        == 403
    )
    demote = lead.patch(url + "lead-user/", {"role": "viewer"}, format="json")
    assert demote.status_code == 400 and "lead" in demote.json()["detail"]
    assert lead.delete(url + "lead-user/").status_code == 400  # the lead cannot be removed
    assert lead.delete(url + "nobody/").status_code == 404
    assert lead.delete(url + "outsider-user/").status_code == 204
    assert not CaseMembership.objects.filter(case=world.case, user=team.outsider).exists()
    assert team.client("outsider").get(url).status_code == 404
    assert list(
        AuditEvent.objects.filter(case=world.case, action__startswith="member.").values_list(
            "action", flat=True
        )
    ) == ["member.added", "member.role", "member.removed"]
    assert CaseMembership.objects.get(case=world.case, user=team.lead).role == Role.LEAD
