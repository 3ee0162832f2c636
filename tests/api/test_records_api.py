"""Timeline entries, notes and checklists: members read; investigators and the lead write; every change
goes through the workspace actions (audited)."""

from __future__ import annotations

import pytest

from cases.models import AuditEvent, ChecklistItem, NoteRevision, TimelineEvent

pytestmark = pytest.mark.django_db


def test_timeline_crud(team, world):
    url = f"/api/cases/{world.case.pk}/timeline/"
    listing = team.client("viewer").get(url).json()
    assert [e["title"] for e in listing["results"]] == ["Alert fired"]
    assert listing["results"][0]["findings"] == [world.findings[0].pk]
    client = team.client("investigator")
    created = client.post(
        url,
        {
            "occurred_at": "2026-03-14T09:26:53Z",
            "title": "Miner started",
            "findings": [world.findings[0].pk],
            "evidence": [world.evidence.pk],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    entry = created.json()
    assert entry["occurred_at"] == "2026-03-14T09:26:53Z" and entry["kind"] == "manual" and entry["editable"]
    assert entry["evidence"] == [world.evidence.pk] and entry["author"] == "investigator-user"
    foreign = client.post(url, {"title": "x", "findings": [10**9]}, format="json")
    assert foreign.status_code == 400 and "findings" in foreign.json()["errors"]
    edited = client.patch(
        f"{url}{entry['id']}/", {"title": "Miner started (xmrig)", "findings": []}, format="json"
    ).json()
    assert edited["title"] == "Miner started (xmrig)" and edited["findings"] == []
    assert edited["occurred_at"] == "2026-03-14T09:26:53Z"
    heading = client.post(url, {"title": "Containment", "kind": "heading"}, format="json").json()
    assert heading["kind"] == "heading"
    assert client.post(url, {"title": "x", "kind": "status"}, format="json").status_code == 400
    # stored records of what people did are read-only
    team.client("lead").patch(f"/api/cases/{world.case.pk}/", {"status": "contained"}, format="json")
    status_entry = TimelineEvent.objects.get(case=world.case, kind="status")
    assert client.patch(f"{url}{status_entry.pk}/", {"title": "x"}, format="json").status_code == 403
    assert client.delete(f"{url}{status_entry.pk}/").status_code == 403
    assert team.client("viewer").post(url, {"title": "x"}, format="json").status_code == 403
    assert team.client("viewer").delete(f"{url}{entry['id']}/").status_code == 403
    assert team.client("outsider").get(url).status_code == 404
    assert client.delete(f"{url}{entry['id']}/").status_code == 204
    assert client.get(f"{url}{entry['id']}/").status_code == 404
    assert team.client("viewer").get(url, {"kind": "status,heading"}).json()["count"] == 2
    assert AuditEvent.objects.filter(case=world.case, action="timeline.deleted").count() == 1


def test_notes_keep_revisions(team, world):
    url = f"/api/cases/{world.case.pk}/notes/"
    client = team.client("investigator")
    note = client.post(url, {"title": "Hosts", "body": "web-1"}, format="json")
    assert note.status_code == 201 and note.json()["revisions"] == 1
    note_url = f"{url}{note.json()['id']}/"
    updated = client.patch(note_url, {"body": "web-1, web-2"}, format="json").json()
    assert updated["title"] == "Hosts" and updated["body"] == "web-1, web-2" and updated["revisions"] == 2
    revisions = team.client("viewer").get(note_url + "revisions/").json()
    assert [r["body"] for r in revisions["results"]] == ["web-1", "web-1, web-2"]
    assert team.client("viewer").patch(note_url, {"body": "x"}, format="json").status_code == 403
    assert team.client("outsider").get(note_url).status_code == 404
    assert client.delete(note_url).status_code == 405  # notes are never deleted: their history stays
    assert client.post(url, {"body": "no title"}, format="json").status_code == 400
    assert NoteRevision.objects.filter(note_id=note.json()["id"]).count() == 2


def test_checklists_and_items(team, world):
    url = f"/api/cases/{world.case.pk}/checklists/"
    templates = team.client("viewer").get("/api/checklist-templates/").json()
    assert "key-rotation" in [t["slug"] for t in templates["results"]]
    listing = team.client("viewer").get(url).json()
    checklist = listing["results"][0]
    assert checklist["slug"] == "ci-runner-wipe" and checklist["total"] == len(checklist["items"]) > 0
    client = team.client("investigator")
    added = client.post(url, {"template": "key-rotation"}, format="json")
    assert added.status_code == 201 and added.json()["slug"] == "key-rotation"
    assert client.post(url, {"template": "nope"}, format="json").status_code == 400
    item = client.post(
        f"{url}{checklist['id']}/items/",
        {"text": "Wipe runner 7", "finding": world.findings[0].pk},
        format="json",
    )
    assert item.status_code == 201 and item.json()["finding"] == world.findings[0].pk
    item_url = f"{url}{checklist['id']}/items/{item.json()['id']}/"
    done = client.patch(
        item_url, {"done": True, "owner": "viewer-user", "due": "2026-04-01", "note": "ok"}, format="json"
    ).json()
    assert done["done"] and done["done_by"] == "investigator-user" and done["owner"] == "viewer-user"
    assert done["due"] == "2026-04-01"
    assert TimelineEvent.objects.filter(
        case=world.case, kind="checklist", title="Done: Wipe runner 7"
    ).exists()
    assert client.patch(item_url, {"owner": "outsider-user"}, format="json").status_code == 400
    assert client.patch(item_url, {"text": "  "}, format="json").status_code == 400
    assert client.patch(item_url, {"owner": None}, format="json").json()["owner"] is None
    wrong_list = f"{url}{added.json()['id']}/items/{item.json()['id']}/"
    assert client.get(wrong_list).status_code == 404
    assert team.client("viewer").patch(item_url, {"done": False}, format="json").status_code == 403
    assert team.client("viewer").post(url, {"template": "key-rotation"}, format="json").status_code == 403
    assert team.client("outsider").get(item_url).status_code == 404
    assert client.delete(item_url).status_code == 204
    assert not ChecklistItem.objects.filter(pk=item.json()["id"]).exists()
    assert client.delete(f"{url}{added.json()['id']}/").status_code == 204
    assert team.client("viewer").get(url).json()["count"] == 1
    actions = set(AuditEvent.objects.filter(case=world.case).values_list("action", flat=True))
    assert {
        "checklist.item.deleted",
        "checklist.deleted",
        "checklist.item",
        "checklist.item.added",
    } <= actions
