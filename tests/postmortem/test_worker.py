"""End to end with a real Celery worker: the image is uploaded and scanned by the worker, the case is
worked, and a post-mortem too large to render in the request is rendered by the worker with progress."""

from __future__ import annotations

import hashlib

import pytest

from cases.models import CustodyEvent, ExportRecord
from cases.postmortem import context
from cases.postmortem.sample import work_the_case
from tests.conftest import upload_file
from tests.integration.conftest import start_worker, wait_for  # noqa: F401 - a fixture
from tests.postmortem.conftest import SECRETS, pdftotext, poisoned_image, squash

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.pdf]


@pytest.fixture(autouse=True)
def isolated_store() -> None:
    """The worker shares the session's evidence store (see tests/integration/conftest.py)."""


def test_worker_scans_then_renders_the_postmortem(start_worker, api, case, alice, settings, tmp_path):  # noqa: F811
    worker = start_worker()
    built = poisoned_image(tmp_path / "shop-web.tar")
    response = api.post(
        f"/api/cases/{case.pk}/evidence/", {"file": upload_file(built.path)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    evidence_id = response.json()["id"]

    def scanned():
        scan = api.get(f"/api/evidence/{evidence_id}/").json()["scan"]
        return scan if scan["status"] in ("succeeded", "failed") else None

    try:
        scan = wait_for(scanned, timeout=120, interval=0.2, what="the scan")
    except AssertionError:
        raise AssertionError("scan did not finish; worker log:\n" + worker.output()) from None
    assert scan["status"] == "succeeded", scan
    work_the_case(case, alice, timeline=10, triage=10)

    settings.LOWERDIR_POSTMORTEM_INLINE_MAX = 0  # this request's process only: render in the worker
    queued = api.get(f"/cases/{case.pk}/postmortem.pdf?tlp=red")
    assert queued.status_code == 202, queued.content
    location = queued["Location"]
    progress: list[float] = []

    def rendered():
        status = api.get(location, HTTP_ACCEPT="application/json").json()
        progress.append(status["progress"])
        return status if status["status"] in ("done", "failed") else None

    try:
        status = wait_for(rendered, timeout=180, interval=0.1, what="the export")
    except AssertionError:
        raise AssertionError("export did not finish; worker log:\n" + worker.output()) from None
    assert status["status"] == "done", status
    assert progress == sorted(progress) and progress[-1] == 1.0

    download = api.get(status["download"])
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == status["sha256"]
    record = ExportRecord.objects.get(pk=status["id"])
    assert record.attempt == 1 and record.pages == status["pages"] and record.tlp == "red"
    assert CustodyEvent.objects.filter(action="exported", detail__sha256=record.sha256).count() == 1

    text = pdftotext(download.content, tmp_path)
    for _id, heading in context.SECTIONS:
        assert heading in text
    assert built.manifest_digest in squash(text) and "TLP:RED" in text
    for secret in SECRETS:
        assert secret not in squash(text)
