"""The case workspace: case list, overview, status, narrative, members, case templates, and roles."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cases.models import AuditEvent, Case, CaseMembership, CaseTemplate, Checklist, Role, TimelineEvent
from scanner.models import Finding
from tests.ui import scenario

pytestmark = pytest.mark.django_db
demo = scenario.demo  # a fixture
team = scenario.team  # a fixture


def test_case_list_filters_search_and_pagination(web, alice, make_user):
    other = make_user("olga")
    for n in range(55):
        Case.open_case(lead=alice, title=f"case {n}", severity="high" if n % 2 else "low")
    crit = Case.open_case(lead=other, title="Miner in prod", summary="xmrig found", severity="critical")
    CaseMembership.objects.create(case=crit, user=alice, role=Role.INVESTIGATOR)
    Case.objects.filter(pk=crit.pk).update(status="contained")
    page = web.get(reverse("cases:list")).content.decode()
    assert "Page 1 of 2" in page
    assert crit.key in web.get(reverse("cases:list") + "?q=xmrig").content.decode()
    assert "case 3<" not in web.get(reverse("cases:list") + "?q=xmrig").content.decode()
    body = web.get(reverse("cases:list") + "?status=contained").content.decode()
    assert crit.key in body and "case 1<" not in body
    body = web.get(reverse("cases:list") + f"?lead={other.pk}").content.decode()
    assert crit.key in body and "case 1<" not in body
    body = web.get(reverse("cases:list") + "?severity=low").content.decode()
    assert "case 0<" in body and "case 1<" not in body and crit.key not in body


def test_new_case_from_a_builtin_template(web):
    response = web.post(
        reverse("cases:list"),
        {"title": "Poisoned latest", "summary": "", "severity": "", "template": "builtin:poisoned-image"},
    )
    case = Case.objects.get(title="Poisoned latest")
    assert response.status_code == 302
    assert case.severity == "critical" and case.template == "builtin:poisoned-image"
    slugs = list(Checklist.objects.filter(case=case).values_list("slug", flat=True))
    assert slugs == [
        "key-rotation",
        "registry-purge",
        "ci-runner-wipe",
        "rebuild-pinned-digest",
        "enforce-signatures",
    ]
    headings = list(TimelineEvent.objects.filter(case=case, kind="heading").values_list("title", flat=True))
    assert headings == ["Detection", "Containment", "Eradication", "Recovery", "Lessons learned"]
    assert Checklist.objects.get(case=case, slug="registry-purge").items.count() >= 4


def test_new_case_from_an_admin_managed_template(web):
    CaseTemplate.objects.create(
        slug="ci-leak",
        name="CI token leak",
        severity="high",
        checklists=["key-rotation"],
        timeline_headings=["Found"],
    )
    form = web.get(reverse("cases:list")).content.decode()
    assert "CI token leak" in form and "Poisoned image in production" in form
    web.post(
        reverse("cases:list"), {"title": "Token", "summary": "", "severity": "", "template": "db:ci-leak"}
    )
    case = Case.objects.get(title="Token")
    assert case.severity == "high"
    assert list(case.checklists.values_list("slug", flat=True)) == ["key-rotation"]


def test_overview_shows_counts_chart_checklist_progress_and_narrative(team, demo):
    client = team.client("viewer")
    html = client.get(reverse("cases:detail", args=[demo.pk])).content.decode()
    assert "<svg" in html and "Findings by severity" in html and "Layer chart" in html
    critical = Finding.objects.filter(case=demo, severity="critical").count()
    assert f">{critical}</text>" in html
    for label in ("Root cause", "Impact", "What went well", "What went wrong", "Where we got lucky"):
        assert label in html
    assert "bob" in html and "victor" in html  # members and roles
    assert "0 of 0" in html  # checklist progress


def test_status_changes_go_on_the_timeline_and_audit(team, demo):
    client = team.client("investigator")
    for status in ("contained", "eradicated"):
        assert client.post(reverse("cases:status", args=[demo.pk]), {"status": status}).status_code == 302
    demo.refresh_from_db()
    assert demo.status == "eradicated"
    titles = list(TimelineEvent.objects.filter(case=demo, kind="status").values_list("title", flat=True))
    assert titles == ["Status: Open → Contained", "Status: Contained → Eradicated"]
    event = AuditEvent.objects.filter(case=demo, action="case.status").last()
    assert event.data == {"before": "contained", "after": "eradicated"} and event.actor == team.investigator


def test_only_the_lead_closes_and_reopens(team, demo):
    investigator, lead = team.client("investigator"), team.client("lead")
    investigator.post(reverse("cases:status", args=[demo.pk]), {"status": "closed"})
    demo.refresh_from_db()
    assert demo.status == "open"
    lead.post(reverse("cases:status", args=[demo.pk]), {"status": "closed"})
    demo.refresh_from_db()
    assert demo.status == "closed"
    investigator.post(reverse("cases:status", args=[demo.pk]), {"status": "open"})
    demo.refresh_from_db()
    assert demo.status == "closed"


def test_narrative_fields_are_saved_audited_and_rendered_safely(team, demo):
    client = team.client("investigator")
    client.post(
        reverse("cases:edit", args=[demo.pk]),
        {
            "title": "ignored for investigators",
            "severity": "low",
            "summary": demo.summary,
            "root_cause": "Pulled **latest** during the attacker's push <script>alert(1)</script>",
            "impact": "Miner ran for 3 h",
            "lessons_went_well": "EDR alert",
            "lessons_went_wrong": "No pinning",
            "lessons_lucky": "No customer data on the node",
        },
    )
    demo.refresh_from_db()
    assert demo.impact == "Miner ran for 3 h" and demo.lessons_lucky == "No customer data on the node"
    assert demo.title != "ignored for investigators" and demo.severity == "critical"  # lead-only fields
    event = AuditEvent.objects.filter(case=demo, action="case.updated").last()
    assert event.data["after"]["impact"] == "Miner ran for 3 h" and event.data["before"]["impact"] == ""
    html = client.get(reverse("cases:detail", args=[demo.pk])).content.decode()
    assert "<strong>latest</strong>" in html and "<script>alert(1)" not in html
    team.client("lead").post(
        reverse("cases:edit", args=[demo.pk]),
        {
            "title": "Renamed",
            "severity": "high",
            "summary": demo.summary,
            "root_cause": demo.root_cause,
            "impact": demo.impact,
            "lessons_went_well": "",
            "lessons_went_wrong": "",
            "lessons_lucky": "",
        },
    )
    demo.refresh_from_db()
    assert demo.title == "Renamed" and demo.severity == "high"


def test_lead_manages_members(team, demo, make_user):
    lead = team.client("lead")
    url = reverse("cases:members", args=[demo.pk])
    newbie = make_user("nina")
    lead.post(url, {"op": "add", "username": "nina", "role": "viewer"})
    membership = CaseMembership.objects.get(case=demo, user=newbie)
    assert membership.role == "viewer"
    lead.post(url, {"op": "role", "membership": membership.pk, "role": "investigator"})
    membership.refresh_from_db()
    assert membership.role == "investigator"
    lead.post(url, {"op": "remove", "membership": membership.pk})
    assert not CaseMembership.objects.filter(case=demo, user=newbie).exists()
    lead_membership = CaseMembership.objects.get(case=demo, user=team.lead)
    lead.post(url, {"op": "remove", "membership": lead_membership.pk})
    assert CaseMembership.objects.filter(pk=lead_membership.pk).exists()  # the lead cannot be removed
    bob = CaseMembership.objects.get(case=demo, user=team.investigator)
    lead.post(url, {"op": "lead", "membership": bob.pk})
    demo.refresh_from_db()
    assert demo.lead == team.investigator
    actions = list(
        AuditEvent.objects.filter(case=demo, action__startswith="member.").values_list("action", flat=True)
    )
    assert actions == ["member.added", "member.role", "member.removed"]
    assert AuditEvent.objects.filter(case=demo, action="case.lead").exists()


def _write_requests(case, finding, item_id, evidence):
    """(name, url, data) for every write a case member can make; each needs at least investigator."""
    return [
        ("status", reverse("cases:status", args=[case.pk]), {"status": "contained"}),
        (
            "edit",
            reverse("cases:edit", args=[case.pk]),
            {"title": case.title, "severity": case.severity, "summary": "x", "impact": "y"},
        ),
        ("verify", reverse("cases:verify", args=[case.pk, evidence.pk]), {}),
        ("upload", reverse("cases:upload", args=[case.pk]), {}),
        ("triage", reverse("cases:triage", args=[case.pk, finding.pk]), {"status": "confirmed"}),
        ("comment", reverse("cases:comment", args=[case.pk, finding.pk]), {"body": "seen"}),
        ("bulk", reverse("cases:findings_bulk", args=[case.pk]), {"action": "resolved", "ids": [finding.pk]}),
        (
            "timeline",
            reverse("cases:timeline", args=[case.pk]),
            {"occurred_at": "2026-01-01 10:00", "title": "t"},
        ),
        ("note", reverse("cases:notes", args=[case.pk]), {"title": "n", "body": "b"}),
        ("checklist", reverse("cases:checklists", args=[case.pk]), {"template": "key-rotation"}),
        ("item", reverse("cases:checklist_item", args=[case.pk, item_id]), {"op": "toggle"}),
        ("recover", reverse("cases:recover", args=[case.pk, 10**9]), {}),
    ]


READ_URLS = [
    "cases:detail",
    "cases:evidence",
    "cases:image",
    "cases:findings",
    "cases:timeline",
    "cases:notes",
    "cases:checklists",
    "cases:audit",
    "cases:images",
]


@pytest.mark.parametrize("who", ["lead", "investigator", "viewer", "outsider"])
def test_roles_are_enforced_on_every_page_and_action(who, team, demo, alice):
    from cases.workspace import actions

    client = team.client(who)
    finding = Finding.objects.filter(case=demo).first()
    item = actions.add_checklist(demo, alice, "ci-runner-wipe").items.first()
    evidence = demo.evidence.first()
    for name in READ_URLS:
        status = client.get(reverse(name, args=[demo.pk])).status_code
        assert status == (404 if who == "outsider" else 200), (who, name, status)
    before = AuditEvent.objects.count()
    for name, url, data in _write_requests(demo, finding, item.pk, evidence):
        status = client.post(url, data).status_code
        if who == "outsider":
            assert status == 404, (who, name, status)
        elif who == "viewer":
            assert status == 403, (who, name, status)
        else:
            assert status in (200, 302, 404), (who, name, status)  # recover: no such file
    if who in ("viewer", "outsider"):
        assert AuditEvent.objects.count() == before  # nothing changed
    members = client.post(
        reverse("cases:members", args=[demo.pk]), {"op": "add", "username": "mallory", "role": "viewer"}
    )
    assert members.status_code == {"lead": 302, "investigator": 403, "viewer": 403, "outsider": 404}[who]


def test_every_page_sends_a_strict_csp(team, demo):
    client = team.client("lead")
    for name in READ_URLS:
        policy = client.get(reverse(name, args=[demo.pk]))["Content-Security-Policy"]
        assert (
            "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
        )


def test_templates_have_no_inline_script_or_style():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "templates"
    for path in [*root.rglob("*.html"), *root.rglob("*.svg")]:
        text = path.read_text()
        assert " style=" not in text and "<style" not in text, path
        assert "<script>" not in text and "hx-on" not in text and "javascript:" not in text, path
        for line in text.splitlines():
            if "<script" in line:
                assert 'src="' in line, (path, line)


@pytest.mark.parametrize(
    ("who", "expected"), [("lead", 201), ("investigator", 201), ("viewer", 403), ("outsider", 404)]
)
def test_roles_in_the_api(who, expected, team, demo, small_image):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from tests.conftest import upload_file

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=getattr(team, who)).key}")
    assert api.get(f"/api/cases/{demo.pk}/").status_code == (404 if who == "outsider" else 200)
    response = api.post(
        f"/api/cases/{demo.pk}/evidence/", {"file": upload_file(small_image.path)}, format="multipart"
    )
    assert response.status_code == expected, response.content


def test_charts_render_standalone_svg_for_the_postmortem(demo):
    from cases.workspace import queries
    from cases.workspace.charts import layer_chart_svg, severity_svg
    from scanner.models import Image

    counts = {name: c["total"] for name, c in queries.severity_counts(demo).items()}
    svg = severity_svg(counts)
    assert (
        svg.lstrip().startswith("<svg")
        and 'xmlns="http://www.w3.org/2000/svg"' in svg
        and "style=" not in svg
    )
    image = Image.objects.get(scan__evidence__case=demo)
    chart = layer_chart_svg(image, image.layers.order_by("index"), queries.flagged_layers(demo))
    assert chart.count("<g>") == image.layers.count() and "style=" not in chart and "<path" in chart


def test_admin_manages_case_templates(admin_client):
    response = admin_client.post(
        "/admin/cases/casetemplate/add/",
        {
            "slug": "supply-chain",
            "name": "Supply chain",
            "description": "",
            "severity": "high",
            "checklists": '["key-rotation"]',
            "timeline_headings": '["Found"]',
        },
    )
    assert response.status_code == 302 and CaseTemplate.objects.filter(slug="supply-chain").exists()


def test_overview_shows_unfinished_and_failed_scans(web, case, alice, small_image):
    from cases.intake import receive_evidence
    from scanner.models import ScanRun
    from tests.conftest import upload_file

    uploaded = upload_file(small_image.path)
    uploaded.sha256 = "b" * 64
    run = ScanRun.objects.get(evidence=receive_evidence(case=case, uploaded=uploaded, user=alice))
    html = web.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "data-scan-status" in html and "Scanning <strong>small.tar</strong>" in html  # polled by app.js
    ScanRun.objects.filter(pk=run.pk).update(status="failed", error="not an image <b>x</b>")
    html = web.get(reverse("cases:images", args=[case.pk])).content.decode()
    assert "the scan failed" in html and "not an image &lt;b&gt;x&lt;/b&gt;" in html
