"""Evidence: list per case, upload (streamed, hashed), retrieve with scan status/progress/error,
re-verify (re-hash the stored blob; a mismatch is recorded, not hidden), custody events, images."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.storage import default_storage

from cases.models import CustodyEvent, Evidence
from scanner.models import ScanRun
from tests.conftest import upload_file

from .conftest import stored_evidence

pytestmark = pytest.mark.django_db


def test_list_upload_and_retrieve(team, world, small_image):
    url = f"/api/cases/{world.case.pk}/evidence/"
    listing = team.client("viewer").get(url).json()
    assert [e["id"] for e in listing["results"]] == [world.evidence.pk]
    assert listing["results"][0]["scan"]["status"] == "succeeded"
    response = team.client("investigator").post(
        url, {"file": upload_file(small_image.path)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sha256"] == hashlib.sha256(small_image.path.read_bytes()).hexdigest()
    assert body["scan"]["status"] == "queued" and body["scan"]["progress"] == 0.0
    assert body["uploaded_by"] == "investigator-user"
    ScanRun.objects.filter(evidence_id=body["id"]).update(status="failed", error="not an image: no manifest")
    scan = team.client("viewer").get(f"/api/evidence/{body['id']}/").json()["scan"]
    assert scan["status"] == "failed" and scan["error"] == "not an image: no manifest"
    assert (
        team.client("viewer")
        .post(url, {"file": upload_file(small_image.path)}, format="multipart")
        .status_code
        == 403
    )
    no_file = team.client("lead").post(url, {"description": "x"}, format="multipart")
    assert no_file.status_code == 400 and "file" in no_file.json()["errors"]
    assert team.client("outsider").get(url).status_code == 404
    assert team.client("outsider").get(f"/api/evidence/{body['id']}/").status_code == 404


def test_reverify_records_match_and_mismatch(team, world):
    url = f"/api/evidence/{world.evidence.pk}/verify/"
    ok = team.client("investigator").post(url)
    assert ok.status_code == 200, ok.content
    assert ok.json()["match"] is True and ok.json()["action"] == "verified"
    assert (
        ok.json()["actor"] == "investigator-user" and ok.json()["detail"]["actual"] == world.evidence.sha256
    )
    # the stored bytes change behind our back: the next verification says so and records it
    path = default_storage.path(world.evidence.storage_key)
    import os

    os.chmod(path, 0o644)
    with open(path, "ab") as handle:
        handle.write(b"tampered")
    bad = team.client("lead").post(url).json()
    assert bad["match"] is False and bad["detail"]["actual"] != world.evidence.sha256
    assert team.client("viewer").post(url).status_code == 403
    assert team.client("outsider").post(url).status_code == 404
    custody = team.client("viewer").get(f"/api/evidence/{world.evidence.pk}/custody/").json()
    # received, exported (the fixture's post-mortem export), then the two verifications
    assert [e["action"] for e in custody["results"]] == ["received", "exported", "verified", "verified"]
    assert [e["detail"].get("match") for e in custody["results"][2:]] == [True, False]
    assert CustodyEvent.objects.filter(evidence=world.evidence).count() == 4
    assert team.client("outsider").get(f"/api/evidence/{world.evidence.pk}/custody/").status_code == 404


def test_images_of_evidence_and_another_cases_evidence(team, world):
    images = team.client("viewer").get(f"/api/evidence/{world.evidence.pk}/images/").json()
    assert images["count"] == 1
    image = images["results"][0]
    assert image["id"] == world.image.pk and [layer["index"] for layer in image["layers"]] == [0, 1, 2]
    assert image["evidence"] == world.evidence.pk and image["scan"] == world.run.pk
    from cases.models import Case

    other = Case.open_case(lead=team.outsider, title="theirs")
    theirs = stored_evidence(other, team.outsider, b"other bytes")
    assert team.client("lead").get(f"/api/evidence/{theirs.pk}/").status_code == 404
    assert team.client("lead").get(f"/api/evidence/{theirs.pk}/images/").status_code == 404
    assert team.client("lead").post(f"/api/evidence/{theirs.pk}/verify/").status_code == 404
    assert Evidence.objects.count() == 2
