"""The findings tab: filters, sorting, pagination, inline (htmx) and bulk triage, assignee, comments."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cases.models import AuditEvent, FindingComment, TimelineEvent
from scanner.models import Finding
from tests.ui import scenario

pytestmark = pytest.mark.django_db
demo = scenario.demo  # a fixture
team = scenario.team  # a fixture

HX = {"HTTP_HX_REQUEST": "true"}


def url(case, **params):
    from urllib.parse import urlencode

    return reverse("cases:findings", args=[case.pk]) + ("?" + urlencode(params, doseq=True) if params else "")


def ids_in(html: str) -> list[int]:
    import re

    return [int(n) for n in re.findall(r'id="finding-row-(\d+)"', html)]


def test_filters_sort_and_paginate(team, demo):
    client = team.client("viewer")
    all_ids = ids_in(client.get(url(demo, size=200)).content.decode())
    assert sorted(all_ids) == sorted(Finding.objects.filter(case=demo).values_list("pk", flat=True))
    # severity sort: critical first, then high...
    ranks = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
    severities = [Finding.objects.get(pk=pk).severity for pk in all_ids]
    assert [ranks[s] for s in severities] == sorted((ranks[s] for s in severities), reverse=True)
    crit = ids_in(client.get(url(demo, severity="critical", size=200)).content.decode())
    assert set(crit) == set(
        Finding.objects.filter(case=demo, severity="critical").values_list("pk", flat=True)
    )
    rule = ids_in(client.get(url(demo, rule="file.setuid", size=200)).content.decode())
    assert rule and all(Finding.objects.get(pk=pk).rule_id == "file.setuid" for pk in rule)
    layer = Finding.objects.filter(case=demo, layer__isnull=False).first().layer
    in_layer = ids_in(client.get(url(demo, layer=layer.pk, size=200)).content.decode())
    assert set(in_layer) == set(Finding.objects.filter(case=demo, layer=layer).values_list("pk", flat=True))
    by_path = ids_in(client.get(url(demo, sort="path", size=200)).content.decode())
    paths = [Finding.objects.get(pk=pk).path for pk in by_path]
    assert paths == sorted(paths)
    first, second = (client.get(url(demo, size=50, page=n)).content.decode() for n in (1, 2))
    assert (
        len(ids_in(first)) == 50
        and len(ids_in(second)) == 10
        and not set(ids_in(first)) & set(ids_in(second))
    )
    assert "Page 1 of 2" in first
    partial = client.get(url(demo, severity="high"), **HX).content.decode()
    assert "<html" not in partial and 'id="bulk"' in partial  # htmx gets the table alone


def test_inline_confirm_swaps_the_row_and_records_timeline_and_audit(team, demo):
    client = team.client("investigator")
    finding = Finding.objects.filter(case=demo, status="open").first()
    response = client.post(
        reverse("cases:triage", args=[demo.pk, finding.pk]),
        {"status": "confirmed"},
        HTTP_HX_TARGET=f"finding-row-{finding.pk}",
        **HX,
    )
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith("<tr") and "Confirmed" in html
    finding.refresh_from_db()
    assert finding.status == "confirmed" and finding.triaged_by == team.investigator and finding.triaged_at
    event = TimelineEvent.objects.get(case=demo, kind="finding")
    assert list(event.findings.all()) == [finding] and event.title.startswith("Finding confirmed")
    audit = AuditEvent.objects.get(case=demo, action="finding.triage")
    assert audit.data["findings"] == finding.pk and audit.data["before"]["status"] == {"open": [finding.pk]}
    assert audit.data["after"]["status"] == "confirmed"


def test_false_positive_needs_a_reason(team, demo):
    client = team.client("investigator")
    finding = Finding.objects.filter(case=demo).first()
    response = client.post(
        reverse("cases:triage", args=[demo.pk, finding.pk]),
        {"status": "false_positive"},
        HTTP_HX_TARGET="finding-panel",
        **HX,
    )
    assert "Give a reason" in response.content.decode()
    finding.refresh_from_db()
    assert finding.status == "open"
    client.post(
        reverse("cases:triage", args=[demo.pk, finding.pk]),
        {"status": "false_positive", "reason": "test fixture in a docs package"},
    )
    finding.refresh_from_db()
    assert finding.status == "false_positive" and finding.triage_reason == "test fixture in a docs package"


def test_panel_triage_sets_assignee_and_refreshes_the_row_out_of_band(team, demo):
    client = team.client("investigator")
    finding = Finding.objects.filter(case=demo).first()
    response = client.post(
        reverse("cases:triage", args=[demo.pk, finding.pk]),
        {"status": "accepted", "reason": "compensating control", "assignee": team.viewer.pk},
        HTTP_HX_TARGET="finding-panel",
        **HX,
    )
    html = response.content.decode()
    assert 'hx-swap-oob="true"' in html and f'id="finding-row-{finding.pk}"' in html
    finding.refresh_from_db()
    assert finding.status == "accepted" and finding.assignee == team.viewer
    assert "Accepted risk" in html


def test_comment_and_detail_links(team, demo):
    client = team.client("investigator")
    finding = Finding.objects.filter(case=demo, layer__isnull=False).exclude(path="").first()
    client.post(reverse("cases:comment", args=[demo.pk, finding.pk]), {"body": "Seen on **two** nodes"})
    assert FindingComment.objects.get(finding=finding).author == team.investigator
    html = client.get(reverse("cases:finding", args=[demo.pk, finding.pk])).content.decode()
    assert "<strong>two</strong>" in html
    browse = reverse("cases:image_detail", args=[demo.pk, finding.image_id])
    assert (
        browse + "?view=layer&amp;layer=" + str(finding.layer.index) in html
    )  # to its layer/path in the browser
    assert "timeline/?finding=" in html  # to the timeline
    assert "Checklist items" in html


def test_bulk_actions_on_selected_rows_and_on_everything_matching(team, demo):
    client = team.client("investigator")
    picked = list(Finding.objects.filter(case=demo).values_list("pk", flat=True)[:3])
    client.post(
        reverse("cases:findings_bulk", args=[demo.pk]),
        {"action": "confirmed", "ids": picked, "scope": "selected"},
    )
    assert set(Finding.objects.filter(case=demo, status="confirmed").values_list("pk", flat=True)) == set(
        picked
    )
    event = TimelineEvent.objects.get(case=demo, kind="finding")
    assert event.findings.count() == 3 and event.title == "3 findings marked confirmed"
    info = Finding.objects.filter(case=demo, severity="info").count()
    response = client.post(
        reverse("cases:findings_bulk", args=[demo.pk]),
        {
            "action": "false_positive",
            "reason": "informational only",
            "scope": "matching",
            "querystring": "severity=info",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith("?severity=info")
    assert Finding.objects.filter(case=demo, status="false_positive").count() == info
    client.post(
        reverse("cases:findings_bulk", args=[demo.pk]),
        {"action": "assign", "assignee": team.lead.pk, "ids": picked, "scope": "selected"},
    )
    assert Finding.objects.filter(case=demo, assignee=team.lead).count() == 3
    audit = AuditEvent.objects.filter(case=demo, action="finding.bulk_triage").last()
    assert audit.data["after"]["assignee"] == "alice" and sorted(audit.data["findings"]) == sorted(picked)


def test_bulk_cannot_reach_another_cases_findings(team, demo, alice):
    from cases.demo import build_demo_case

    other = build_demo_case(alice, findings=5, files=50, seed=3)
    foreign = list(Finding.objects.filter(case=other).values_list("pk", flat=True))
    team.client("investigator").post(
        reverse("cases:findings_bulk", args=[demo.pk]),
        {"action": "resolved", "ids": foreign, "scope": "selected"},
    )
    assert not Finding.objects.filter(case=other, status="resolved").exists()
    assert (
        team.client("investigator").get(reverse("cases:finding", args=[demo.pk, foreign[0]])).status_code
        == 404
    )


def test_rule_pack_fields_show_in_the_panel(team, demo):
    finding = Finding.objects.filter(case=demo).first()
    Finding.objects.filter(pk=finding.pk).update(
        excerpt="AKIA…[20 chars, sha256:1a5d44a2dca19669]",
        remediation="Rotate the key and rebuild.",
        suppressed=True,
        suppression="known test fixture",
    )
    html = team.client("viewer").get(reverse("cases:finding", args=[demo.pk, finding.pk])).content.decode()
    assert "AKIA…[20 chars, sha256:1a5d44a2dca19669]" in html and "Rotate the key and rebuild." in html
    assert "Suppressed by the rule pack: known test fixture" in html
    row = team.client("viewer").get(url(demo, size=200)).content.decode()
    assert 'title="known test fixture">suppressed' in row


def test_secret_suggestion_uses_the_redacted_excerpt(team, demo):
    from cases.workspace.suggestions import secret_label

    finding = Finding(
        title="Credentials in the image config or history",
        detail="AWS access key id in Env AWS_ACCESS_KEY_ID (redacted).",
        excerpt="AKIA…[20 chars, sha256:1a5d44a2dca19669]",
    )
    assert secret_label(finding) == "AKIA…[20 chars, sha256:1a5d44a2dca19669]"
    finding = Finding(
        title="Credentials in the image config or history",
        detail="Env DB_PASSWORD (value redacted) in the image config.",
        excerpt="DB_PASSWORD=hun…[12 chars, sha256:068a580f5c356318]",
    )
    assert secret_label(finding) == "DB_PASSWORD"
