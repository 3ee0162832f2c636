"""Post-mortem exports through the API: request (rendered now, or queued for a large PDF), list the
records with their hashes, download bytes that match the recorded SHA-256; members only."""

from __future__ import annotations

import hashlib

import pytest

from cases.models import AuditEvent, CustodyEvent, ExportRecord

pytestmark = [pytest.mark.django_db, pytest.mark.pdf]


def test_request_list_and_download(team, world):
    url = f"/api/cases/{world.case.pk}/exports/"
    viewer = team.client("viewer")  # viewers may export: an export reads the case
    made = viewer.post(url, {"format": "md", "tlp": "green", "classification": "Internal"}, format="json")
    assert made.status_code == 201, made.content
    record = made.json()
    assert record["status"] == "done" and record["format"] == "md" and record["tlp"] == "green"
    assert record["requested_by"] == "viewer-user" and record["evidence_sha256"] == [world.evidence.sha256]
    download = viewer.get(record["download"])
    assert download.status_code == 200 and download["Content-Type"].startswith("text/markdown")
    assert hashlib.sha256(download.content).hexdigest() == record["sha256"] == download["X-Content-SHA256"]
    assert world.case.key.encode() in download.content
    as_json = viewer.post(url, {"format": "json"}, format="json").json()
    listing = viewer.get(url).json()
    first = world.extra["export"].pk  # the fixture's Markdown export
    assert [r["id"] for r in listing["results"]] == [as_json["id"], record["id"], first]
    assert viewer.get(f"{url}{record['id']}/").json()["sha256"] == record["sha256"]
    assert CustodyEvent.objects.filter(evidence=world.evidence, action="exported").count() == 3
    assert AuditEvent.objects.filter(case=world.case, action="postmortem.downloaded").count() == 1
    bad = viewer.post(url, {"format": "docx", "tlp": "purple"}, format="json")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"format", "tlp"}


def test_a_large_pdf_is_queued_and_not_downloadable_yet(
    team, world, settings, django_capture_on_commit_callbacks
):
    settings.LOWERDIR_POSTMORTEM_INLINE_MAX = 1  # every PDF goes to a worker
    url = f"/api/cases/{world.case.pk}/exports/"
    with django_capture_on_commit_callbacks() as callbacks:
        queued = team.client("investigator").post(url, {"format": "pdf"}, format="json")
    assert queued.status_code == 202 and queued["Location"] == f"{url}{queued.json()['id']}/"
    assert queued.json()["status"] == "queued" and queued.json()["download"] is None and len(callbacks) == 1
    early = team.client("investigator").get(f"{url}{queued.json()['id']}/download/")
    assert early.status_code == 409 and early.json()["status"] == "queued"


def test_exports_are_members_only(team, world):
    url = f"/api/cases/{world.case.pk}/exports/"
    record = team.client("lead").post(url, {"format": "json"}, format="json").json()
    outsider = team.client("outsider")
    assert outsider.get(url).status_code == 404
    assert outsider.post(url, {"format": "json"}, format="json").status_code == 404
    assert outsider.get(f"{url}{record['id']}/").status_code == 404
    assert outsider.get(f"{url}{record['id']}/download/").status_code == 404
    from cases.models import Case

    other = Case.open_case(lead=team.outsider, title="theirs")
    theirs = team.client("outsider").post(f"/api/cases/{other.pk}/exports/", {"format": "md"}, format="json")
    assert theirs.status_code == 201
    # a member of this case asking for the other case's export through this case's URL
    assert team.client("lead").get(f"{url}{theirs.json()['id']}/download/").status_code == 404
    assert ExportRecord.objects.count() == 3  # the fixture's, the lead's and the outsider's
