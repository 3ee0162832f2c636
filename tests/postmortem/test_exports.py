"""Exports as records: hash, size, custody and audit for every export; access by session or token, 404 for
non-members; large cases in a Celery task with progress; stored bytes checked before they go out again."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import AuditEvent, CustodyEvent, Evidence, ExportRecord
from cases.postmortem import exports
from cases.postmortem.tasks import render_postmortem, sweep_stale_exports
from cases.workspace.audit import verify_case

pytestmark = [pytest.mark.django_db, pytest.mark.pdf]

FORMATS = ("pdf", "md", "json")


def url(name: str, case, *args) -> str:
    return reverse(f"cases:{name}", args=[case.pk, *args])


def test_each_export_is_recorded_with_its_hash_custody_and_audit(worked, web, alice):
    response = web.get(url("postmortem_pdf", worked.case) + "?tlp=amber%2Bstrict&classification=Restricted")
    assert response.status_code == 200
    digest = hashlib.sha256(response.content).hexdigest()
    record = ExportRecord.objects.get(case=worked.case)
    assert record.status == "done" and record.format == "pdf" and record.requested_by == alice
    assert record.sha256 == digest and record.size == len(response.content) and record.pages >= 10
    assert record.tlp == "amber+strict" and record.classification == "Restricted"
    assert record.evidence == [worked.archive_sha256]
    assert default_storage.open(record.storage_key).read() == response.content

    custody = CustodyEvent.objects.get(evidence__case=worked.case, action="exported")
    assert custody.actor == alice
    assert custody.detail == {
        "export": record.pk,
        "format": "pdf",
        "sha256": digest,
        "size": len(response.content),
        "tlp": "TLP:AMBER+STRICT",
    }
    event = AuditEvent.objects.get(case=worked.case, action="postmortem.exported")
    assert event.data["sha256"] == digest and event.data["evidence"] == [worked.archive_sha256]
    assert verify_case(worked.case).ok

    # The Post-mortem tab lists it with its hash; the evidence tab shows the custody event.
    page = web.get(url("postmortem", worked.case)).content.decode()
    assert digest in page and "Amber+Strict".upper() in page.upper() and "Restricted" in page
    assert url("export_download", worked.case, record.pk) in page
    evidence_page = web.get(url("evidence", worked.case)).content.decode()
    assert "Exported" in evidence_page or "exported" in evidence_page

    # A second export is a second record and a second custody event; the download returns the stored bytes.
    web.get(url("postmortem_md", worked.case))
    assert ExportRecord.objects.filter(case=worked.case, status="done").count() == 2
    assert CustodyEvent.objects.filter(evidence__case=worked.case, action="exported").count() == 2
    again = web.get(url("export_download", worked.case, record.pk))
    assert again.status_code == 200 and again.content == response.content
    assert again["X-Content-SHA256"] == digest
    assert AuditEvent.objects.filter(case=worked.case, action="postmortem.downloaded").count() == 1


def test_a_tampered_stored_export_is_not_sent(worked, web):
    web.get(url("postmortem_json", worked.case))
    record = ExportRecord.objects.get(case=worked.case)
    path = default_storage.path(record.storage_key)
    import os

    os.chmod(path, 0o600)
    with open(path, "ab") as handle:
        handle.write(b" ")
    response = web.get(url("export_download", worked.case, record.pk))
    assert response.status_code == 500 and b"does not match its recorded SHA-256" in response.content
    assert AuditEvent.objects.filter(case=worked.case, action="postmortem.mismatch").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_auth_works_and_anonymous_requests_are_refused(worked, api, client, fmt):
    response = api.get(url(f"postmortem_{fmt}", worked.case))
    assert response.status_code == 200
    assert response["X-Content-SHA256"] == hashlib.sha256(response.content).hexdigest()
    assert ExportRecord.objects.get(case=worked.case).requested_by.username == "alice"
    anonymous = client.get(url(f"postmortem_{fmt}", worked.case))
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    bad = client.get(url(f"postmortem_{fmt}", worked.case), HTTP_AUTHORIZATION="Token nope")
    assert bad.status_code == 401
    browser = client.get(url(f"postmortem_{fmt}", worked.case), HTTP_ACCEPT="text/html")
    assert browser.status_code == 302 and "/accounts/login/" in browser["Location"]


def test_non_members_get_404_everywhere(worked, web, mallory, client):
    web.get(url("postmortem_json", worked.case))
    record = ExportRecord.objects.get(case=worked.case)
    client.force_login(mallory)
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=mallory).key}")
    paths = [
        url("postmortem", worked.case),
        url("postmortem_html", worked.case),
        *(url(f"postmortem_{fmt}", worked.case) for fmt in FORMATS),
        url("export", worked.case, record.pk),
        url("export_download", worked.case, record.pk),
    ]
    for path in paths:
        assert client.get(path).status_code == 404, path
        if "postmortem/" not in path and "postmortem.html" not in path:  # the token-capable endpoints
            assert token.get(path).status_code == 404, path
    assert ExportRecord.objects.filter(case=worked.case).count() == 1
    assert not AuditEvent.objects.filter(actor=mallory).exists()


def test_an_export_of_another_case_is_404_even_for_a_member(worked, web, alice):
    from cases.models import Case

    other = Case.open_case(lead=alice, title="Other")
    web.get(url("postmortem_json", worked.case))
    record = ExportRecord.objects.get(case=worked.case)
    assert web.get(url("export", other, record.pk)).status_code == 404
    assert web.get(url("export_download", other, record.pk)).status_code == 404


def test_viewers_may_export(worked, viewer, client):
    client.force_login(viewer)
    response = client.get(url("postmortem_md", worked.case))
    assert response.status_code == 200
    assert ExportRecord.objects.get(case=worked.case).requested_by == viewer
    assert client.get(url("postmortem", worked.case)).status_code == 200


def test_export_only_answers_get(worked, web):
    assert web.post(url("postmortem_pdf", worked.case)).status_code == 405
    assert not ExportRecord.objects.exists()


def test_a_large_case_renders_in_a_task_with_progress(
    worked, api, web, settings, django_capture_on_commit_callbacks
):
    settings.LOWERDIR_POSTMORTEM_INLINE_MAX = 0
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.get(url("postmortem_pdf", worked.case))
    assert response.status_code == 202
    record = ExportRecord.objects.get(case=worked.case)
    assert response["Location"] == url("export", worked.case, record.pk)
    assert response.json()["status"] == "queued" and response.json()["download"] is None
    assert len(callbacks) == 1  # the task is sent once the request's transaction commits

    # The worker's side, in this process.
    seen: list[float] = []
    original = exports.ProgressWriter.__call__

    def spy(self, fraction):
        seen.append(fraction)
        self.last = 0.0  # record every step, not once a second
        return original(self, fraction)

    exports.ProgressWriter.__call__ = spy
    try:
        render_postmortem(record.pk)
    finally:
        exports.ProgressWriter.__call__ = original
    record.refresh_from_db()
    assert record.status == "done" and record.progress == 1.0 and record.attempt == 1
    assert seen == sorted(seen) and seen[0] <= 0.2 and 0.25 < seen[-1] < 1.0 and len(seen) >= 4

    status = api.get(url("export", worked.case, record.pk), HTTP_ACCEPT="application/json").json()
    assert status["status"] == "done" and status["sha256"] == record.sha256
    download = api.get(status["download"])
    assert hashlib.sha256(download.content).hexdigest() == record.sha256
    assert CustodyEvent.objects.filter(action="exported", detail__export=record.pk).count() == 1

    # Browsers are sent to the export's page, which refreshes itself until it is done.
    with django_capture_on_commit_callbacks(execute=False):
        browser = web.get(url("postmortem_pdf", worked.case), HTTP_ACCEPT="text/html")
    queued = ExportRecord.objects.filter(case=worked.case).latest("pk")
    assert browser.status_code == 302 and browser["Location"] == url("export", worked.case, queued.pk)
    page = web.get(browser["Location"], HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Refresh"] == "2" and "Queued" in page.content.decode()
    render_postmortem(queued.pk)
    render_postmortem(queued.pk)  # a duplicate message is a no-op
    queued.refresh_from_db()
    assert queued.status == "done" and queued.attempt == 1
    done = web.get(browser["Location"], HTTP_ACCEPT="text/html")
    assert "Refresh" not in done and "Download" in done.content.decode()
    # Markdown and JSON always render in the request.
    assert api.get(url("postmortem_md", worked.case)).status_code == 200


def test_a_failed_render_is_recorded_and_answered(worked, web, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr("cases.postmortem.render.pdf", boom)
    response = web.get(url("postmortem_pdf", worked.case), HTTP_ACCEPT="text/html")
    assert response.status_code == 500 and "renderer exploded" in response.content.decode()
    record = ExportRecord.objects.get(case=worked.case)
    assert record.status == "failed" and "renderer exploded" in record.error
    assert AuditEvent.objects.filter(action="postmortem.failed").exists()
    assert not CustodyEvent.objects.filter(action="exported").exists()


def test_a_superseded_worker_cannot_finish_an_export(worked, alice):
    record = exports.request_export(worked.case, alice, "json")
    attempt = exports.claim(record.pk)
    ExportRecord.objects.filter(pk=record.pk).update(status="queued")  # the sweeper gave it away
    assert exports.claim(record.pk) == attempt + 1
    with pytest.raises(exports.Superseded):
        exports.finish(record, attempt, b"{}", None, [])
    with pytest.raises(exports.Superseded):
        exports.ProgressWriter(record.pk, attempt, interval=0)(0.5)
    assert not CustodyEvent.objects.filter(action="exported").exists()


def test_the_sweeper_queues_stale_exports_again_and_gives_up_eventually(worked, alice, settings, monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(render_postmortem, "delay", sent.append)
    old = timezone.now() - timedelta(seconds=settings.LOWERDIR_SCAN_STALE_AFTER + 5)
    lost = exports.request_export(worked.case, alice, "pdf")
    ExportRecord.objects.filter(pk=lost.pk).update(status="running", attempt=1, heartbeat_at=old)
    fresh = exports.request_export(worked.case, alice, "pdf")
    dead = exports.request_export(worked.case, alice, "pdf")
    ExportRecord.objects.filter(pk=dead.pk).update(
        status="running", attempt=settings.LOWERDIR_SCAN_MAX_ATTEMPTS, heartbeat_at=old
    )
    assert sweep_stale_exports() == 1
    assert sent == [lost.pk]
    assert ExportRecord.objects.get(pk=lost.pk).status == "queued"
    assert ExportRecord.objects.get(pk=fresh.pk).status == "queued"
    assert ExportRecord.objects.get(pk=dead.pk).status == "failed"
    assert sweep_stale_exports() == 0  # just queued again: not stale


def test_the_preview_is_the_document_under_the_csp(worked, web):
    response = web.get(url("postmortem_html", worked.case) + "?tlp=green")
    html = response.content.decode()
    assert response.status_code == 200 and "script-src 'self'" in response["Content-Security-Policy"]
    assert "TLP:GREEN" in html and "/static/css/postmortem.css" in html and "Download PDF" in html
    assert "&lt;img src=&quot;file:///etc/passwd&quot;&gt;" in html and '<img src="file:' not in html
    assert not ExportRecord.objects.exists()  # a preview is not an export
    assert Evidence.objects.get(case=worked.case).custody_events.filter(action="exported").count() == 0


def test_the_overview_links_to_the_export_and_shows_the_new_narrative(worked, web):
    page = web.get(url("detail", worked.case)).content.decode()
    assert url("postmortem", worked.case) in page
    assert "Detection and trigger" in page and "CPU alerts on the web tier" in page
    assert "Deploy by digest only" in page  # action items: prevent
