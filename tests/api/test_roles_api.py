"""Every endpoint family, every role: outsiders get 404 (the case does not exist for them), viewers read
and get 403 on writes, investigators write but get 403 on what only the lead may do, and the lead may do
everything. Nothing changes when a request is refused."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cases.models import AuditEvent
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db

READ, WRITE, LEAD = "read", "write", "lead"


def requests(world, small_image) -> list[tuple[str, str, str, dict | None, str]]:
    """(needs, method, url, body, format) for every endpoint of a case, reads first, deletes last."""
    c = f"/api/cases/{world.case.pk}"
    e, i = world.evidence.pk, world.image.pk
    f = world.findings[0].pk
    entry, note, checklist = world.extra["entry"].pk, world.extra["note"].pk, world.extra["checklist"]
    item = checklist.items.first().pk
    cl = f"{c}/checklists/{checklist.pk}"
    return [
        (READ, "get", f"{c}/", None, "json"),
        (READ, "get", f"{c}/evidence/", None, "json"),
        (READ, "get", f"{c}/findings/", None, "json"),
        (READ, "get", f"{c}/members/", None, "json"),
        (READ, "get", f"{c}/timeline/", None, "json"),
        (READ, "get", f"{c}/timeline/{entry}/", None, "json"),
        (READ, "get", f"{c}/notes/", None, "json"),
        (READ, "get", f"{c}/notes/{note}/", None, "json"),
        (READ, "get", f"{c}/notes/{note}/revisions/", None, "json"),
        (READ, "get", f"{c}/checklists/", None, "json"),
        (READ, "get", f"{cl}/", None, "json"),
        (READ, "get", f"{cl}/items/{item}/", None, "json"),
        (READ, "get", f"{c}/exports/", None, "json"),
        (READ, "get", f"/api/evidence/{e}/", None, "json"),
        (READ, "get", f"/api/evidence/{e}/custody/", None, "json"),
        (READ, "get", f"/api/evidence/{e}/images/", None, "json"),
        (READ, "get", f"/api/images/{i}/", None, "json"),
        (READ, "get", f"/api/images/{i}/files/", None, "json"),
        (READ, "get", f"/api/images/{i}/graveyard/", None, "json"),
        (READ, "get", f"/api/images/{i}/tree/", None, "json"),
        (READ, "get", f"/api/findings/{f}/", None, "json"),
        (WRITE, "patch", f"{c}/", {"summary": "updated"}, "json"),
        (WRITE, "post", f"{c}/evidence/", {"file": upload_file(small_image.path)}, "multipart"),
        (WRITE, "post", f"/api/evidence/{e}/verify/", None, "json"),
        (WRITE, "patch", f"/api/findings/{f}/", {"status": "confirmed"}, "json"),
        (WRITE, "post", f"{c}/findings/bulk/", {"ids": [f], "status": "resolved"}, "json"),
        (WRITE, "post", f"{c}/timeline/", {"title": "new entry"}, "json"),
        (WRITE, "patch", f"{c}/timeline/{entry}/", {"title": "edited"}, "json"),
        (WRITE, "post", f"{c}/notes/", {"title": "n"}, "json"),
        (WRITE, "patch", f"{c}/notes/{note}/", {"body": "b"}, "json"),
        (WRITE, "post", f"{c}/checklists/", {"template": "key-rotation"}, "json"),
        (WRITE, "post", f"{cl}/items/", {"text": "t"}, "json"),
        (WRITE, "patch", f"{cl}/items/{item}/", {"done": True}, "json"),
        (LEAD, "patch", f"{c}/", {"severity": "low"}, "json"),
        (LEAD, "post", f"{c}/members/", {"username": "extra", "role": "viewer"}, "json"),
        (LEAD, "patch", f"{c}/members/viewer-user/", {"role": "viewer"}, "json"),
        (WRITE, "delete", f"{cl}/items/{item}/", None, "json"),
        (WRITE, "delete", f"{c}/timeline/{entry}/", None, "json"),
        (WRITE, "delete", f"{cl}/", None, "json"),
        (LEAD, "delete", f"{c}/members/viewer-user/", None, "json"),
    ]


def expected(role: str, needs: str) -> set[int] | None:
    if role == "outsider":
        return {404}
    allowed = {"lead": {READ, WRITE, LEAD}, "investigator": {READ, WRITE}, "viewer": {READ}}[role]
    return None if needs in allowed else {403}


@pytest.mark.parametrize("role", ["lead", "investigator", "viewer", "outsider"])
def test_every_endpoint_for_every_role(role, team, world, small_image, make_user):
    make_user("extra")
    client = team.client(role)
    before = AuditEvent.objects.count()
    for needs, method, url, body, fmt in requests(world, small_image):
        response = getattr(client, method)(url, body, format=fmt)
        want = expected(role, needs)
        if want is None:
            assert 200 <= response.status_code < 300, (
                role,
                method,
                url,
                response.status_code,
                response.content,
            )
        else:
            assert response.status_code in want, (role, method, url, response.status_code, response.content)
            assert set(response.json()) == {"detail", "code"}
    if role in ("viewer", "outsider"):
        assert AuditEvent.objects.count() == before  # nothing changed


def test_anonymous_is_401_everywhere(world, small_image):
    anonymous = APIClient()
    for _needs, method, url, body, fmt in requests(world, small_image):
        response = getattr(anonymous, method)(url, body, format=fmt)
        assert response.status_code == 401, (method, url)
        assert response["WWW-Authenticate"].startswith("Token")
    for url in ("/api/cases/", "/api/search/?sha256=" + "0" * 64, "/api/checklist-templates/"):
        assert anonymous.get(url).status_code == 401


def test_another_cases_rows_are_404_by_id(team, world):
    """Ids of rows in a case the caller is not in are indistinguishable from ids that do not exist."""
    from cases.models import Case

    from .conftest import scanned_image, stored_evidence

    theirs = Case.open_case(lead=team.outsider, title="theirs")
    other = scanned_image(theirs, stored_evidence(theirs, team.outsider, b"x"), tag="o")
    client = team.client("lead")
    for url in (
        f"/api/images/{other.image.pk}/",
        f"/api/images/{other.image.pk}/files/",
        f"/api/findings/{other.findings[0].pk}/",
        f"/api/evidence/{other.evidence.pk}/custody/",
        f"/api/cases/{theirs.pk}/timeline/",
        f"/api/cases/{theirs.pk}/members/",
    ):
        missing = client.get(url)
        assert missing.status_code == 404 and missing.json() == {
            "detail": "Not found.",
            "code": "not_found",
        }, url
    triage = client.patch(f"/api/findings/{other.findings[0].pk}/", {"status": "confirmed"}, format="json")
    assert triage.status_code == 404
    bulk = client.post(
        f"/api/cases/{world.case.pk}/findings/bulk/",
        {"ids": [other.findings[0].pk], "status": "resolved"},
        format="json",
    )
    assert bulk.status_code == 400  # not a finding of *this* case; and it was not touched
    assert other.findings[0].__class__.objects.get(pk=other.findings[0].pk).status == "open"
