"""Evidence intake: hashed on the way in, content-addressed, immutable, with a custody record."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from cases.models import CustodyAction, CustodyEvent, Evidence
from scanner.models import ScanRun, ScanStatus
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


def evidence_url(case) -> str:
    return f"/api/cases/{case.pk}/evidence/"


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def temp_files() -> list[Path]:
    return sorted(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir())


def test_upload_hashes_stores_and_records_custody(api, case, small_image, django_capture_on_commit_callbacks):
    data = small_image.path.read_bytes()
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(
            evidence_url(case),
            {"file": upload_file(small_image.path)},
            format="multipart",
            REMOTE_ADDR="203.0.113.7",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    expected = hashlib.sha256(data).hexdigest()
    assert body["sha256"] == expected
    assert body["size"] == len(data)
    assert body["scan"]["status"] == "queued"
    assert len(callbacks) == 1  # the scan task is sent only after commit

    evidence = Evidence.objects.get(pk=body["id"])
    assert evidence.storage_key == f"evidence/sha256/{expected[:2]}/{expected}"
    with default_storage.open(evidence.storage_key, "rb") as stored:
        assert stored.read() == data
    assert os.stat(default_storage.path(evidence.storage_key)).st_mode & 0o222 == 0  # written once, read-only

    event = CustodyEvent.objects.get(evidence=evidence)
    assert event.action == CustodyAction.RECEIVED
    assert event.actor.username == "alice"
    assert event.detail["sha256"] == expected and event.detail["size"] == len(data)
    assert event.detail["client_address"] == "203.0.113.7"
    assert ScanRun.objects.get(evidence=evidence).status == ScanStatus.QUEUED
    assert temp_files() == []


def test_same_bytes_twice_reuse_the_blob(api, case, small_image):
    first = api.post(evidence_url(case), {"file": upload_file(small_image.path, "a.tar")}, format="multipart")
    second = api.post(
        evidence_url(case), {"file": upload_file(small_image.path, "b.tar")}, format="multipart"
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["sha256"] == second.json()["sha256"]
    blobs = [p for p in stored_files() if p.name == first.json()["sha256"]]
    assert len(blobs) == 1
    assert CustodyEvent.objects.filter(action=CustodyAction.RECEIVED).count() == 2
    assert CustodyEvent.objects.filter(detail__new_blob=False).count() == 1


def test_oversize_upload_is_413_and_leaves_nothing(api, case, settings):
    settings.LOWERDIR_MAX_UPLOAD_BYTES = 1000
    payload = io.BytesIO(b"x" * 5000)
    payload.name = "big.tar"
    response = api.post(evidence_url(case), {"file": payload}, format="multipart")
    assert response.status_code == 413
    assert "LOWERDIR_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert not Evidence.objects.exists()
    assert stored_files() == [] and temp_files() == []


def test_streaming_cuts_off_past_the_limit(settings):
    """Where no trustworthy Content-Length exists, the handler stops the body as it crosses the limit."""
    from cases.uploads import HashingUploadHandler, UploadTooLarge

    settings.LOWERDIR_MAX_UPLOAD_BYTES = 50_000
    handler = HashingUploadHandler()
    handler.handle_raw_input(None, {}, None, "b")
    handler.new_file("file", "x.tar", "application/octet-stream", None)
    handler.receive_data_chunk(b"y" * 40_000, 0)
    with pytest.raises(UploadTooLarge):
        handler.receive_data_chunk(b"y" * 40_000, 40_000)
    temp_name = handler.file.temporary_file_path()
    handler.file.close()
    assert not Path(temp_name).exists()


def test_interrupted_upload_leaves_nothing(alice, case, rf):
    """The client went away mid-file: the body ends before the closing boundary."""
    from django.core.handlers.wsgi import WSGIRequest
    from rest_framework.authtoken.models import Token

    from cases.api.views import CaseViewSet

    boundary = "CUT"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.tar"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"z" * 300_000
    environ = rf.generic(
        "POST", evidence_url(case), data=b"", content_type=f"multipart/form-data; boundary={boundary}"
    ).META
    environ.update(
        {
            "CONTENT_LENGTH": str(len(body) + 100_000),
            "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
            "HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=alice).key}",
        }
    )
    view = CaseViewSet.as_view({"post": "evidence"})
    response = view(WSGIRequest(environ), pk=str(case.pk))
    assert response.status_code == 400
    assert not Evidence.objects.exists() and not CustodyEvent.objects.exists()
    assert stored_files() == [] and temp_files() == []


def test_viewer_cannot_upload(api, case, make_user, small_image):
    from rest_framework.authtoken.models import Token

    from cases.models import CaseMembership, Role

    viewer = make_user("vera")
    CaseMembership.objects.create(case=case, user=viewer, role=Role.VIEWER)
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=viewer).key}")
    response = api.post(evidence_url(case), {"file": upload_file(small_image.path)}, format="multipart")
    assert response.status_code == 403
    assert not Evidence.objects.exists()


def test_evidence_rows_are_immutable(api, case, small_image):
    response = api.post(evidence_url(case), {"file": upload_file(small_image.path)}, format="multipart")
    evidence = Evidence.objects.get(pk=response.json()["id"])
    evidence.sha256 = "0" * 64
    with pytest.raises(PermissionError):
        evidence.save()
    with pytest.raises(PermissionError):
        evidence.delete()
    with pytest.raises(PermissionError):
        CustodyEvent.objects.get(evidence=evidence).delete()
