"""Findings: the case list (filters, ordering, pagination), retrieve, PATCH triage (status with a reason
where required, assignee, note) and bulk triage by ids or by filter — the UI's rules and audit trail."""

from __future__ import annotations

import pytest

from cases.models import AuditEvent, FindingComment, TimelineEvent
from scanner.models import Finding

pytestmark = pytest.mark.django_db


def test_list_filters(team, world):
    url = f"/api/cases/{world.case.pk}/findings/"
    client = team.client("viewer")
    body = client.get(url).json()
    assert body["count"] == 5 and body["results"][0]["rule_id"] == "malware.yara"
    first = body["results"][0]
    assert first["evidence"] == world.evidence.pk and first["scan"] == world.run.pk
    assert first["config_digest"] == world.image.config_digest and first["layer_index"] == 1
    assert client.get(url, {"evidence": world.evidence.pk}).json()["count"] == 5
    assert client.get(url, {"scan": world.run.pk + 1}).json()["count"] == 0
    assert client.get(url, {"path": "/usr/bin/"}).json()["count"] == 1
    assert client.get(url, {"path": "/USR/BIN/"}).json()["count"] == 0
    assert client.get(url, {"assignee": "none"}).json()["count"] == 5
    ascending = [f["severity"] for f in client.get(url, {"ordering": "-severity"}).json()["results"]]
    assert ascending == ["low", "medium", "high", "critical", "critical"]
    bad = client.get(url, {"ordering": "sideways"})
    assert bad.status_code == 400 and "ordering" in bad.json()["errors"]
    assert client.get(url, {"layer": "-1"}).status_code == 400


def test_retrieve_and_triage(team, world):
    finding = world.findings[0]
    url = f"/api/findings/{finding.pk}/"
    assert team.client("viewer").get(url).json()["rule_id"] == "malware.yara"
    assert team.client("outsider").get(url).status_code == 404
    assert team.client("viewer").patch(url, {"status": "confirmed"}, format="json").status_code == 403
    assert team.client("outsider").patch(url, {"status": "confirmed"}, format="json").status_code == 404
    client = team.client("investigator")
    needs_reason = client.patch(url, {"status": "false_positive"}, format="json")
    assert needs_reason.status_code == 400 and "reason" in needs_reason.json()["detail"].lower()
    response = client.patch(
        url, {"status": "confirmed", "assignee": "viewer-user", "note": "seen on three hosts"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "confirmed" and body["assignee"] == "viewer-user"
    assert body["triaged_by"] == "investigator-user"
    assert [c["body"] for c in body["comments"]] == ["seen on three hosts"]
    assert client.patch(url, {"assignee": "outsider-user"}, format="json").json()["errors"] == {
        "assignee": ["outsider-user is not a member of this case."]
    }
    assert client.patch(url, {"assignee": None}, format="json").json()["assignee"] is None
    assert TimelineEvent.objects.filter(case=world.case, kind="finding", findings=finding).count() == 1
    assert AuditEvent.objects.filter(case=world.case, action="finding.triage").count() == 2
    assert FindingComment.objects.filter(finding=finding).count() == 1


def test_bulk_triage(team, world):
    url = f"/api/cases/{world.case.pk}/findings/bulk/"
    ids = [f.pk for f in world.findings[1:3]]
    assert (
        team.client("viewer").post(url, {"ids": ids, "status": "resolved"}, format="json").status_code == 403
    )
    client = team.client("investigator")
    done = client.post(url, {"ids": ids, "status": "resolved"}, format="json")
    assert done.status_code == 200 and done.json() == {"updated": 2}
    assert set(Finding.objects.filter(status="resolved").values_list("pk", flat=True)) == set(ids)
    by_filter = client.post(
        url, {"filter": {"severity": ["critical"]}, "status": "accepted", "reason": "lab"}, format="json"
    )
    assert by_filter.json() == {"updated": 2}  # the miner and finding 0
    assigned = client.post(url, {"filter": {}, "assignee": "lead-user"}, format="json")
    assert assigned.json() == {"updated": 5}
    assert Finding.objects.filter(assignee=team.lead).count() == 5
    foreign = client.post(url, {"ids": [*ids, 10**9], "status": "open"}, format="json")
    assert foreign.status_code == 400 and foreign.json()["errors"] == {
        "ids": ["Not findings of this case: 1000000000"]
    }
    for body in (
        {"status": "open"},
        {"ids": ids},
        {"ids": ids, "filter": {}, "status": "open"},
        {"ids": ids, "status": "accepted"},
        {"ids": "x", "status": "open"},
    ):
        response = client.post(url, body, format="json")
        assert response.status_code == 400, body
        assert set(response.json()) >= {"detail", "code"}
    assert TimelineEvent.objects.filter(case=world.case, title="2 findings marked resolved").exists()
