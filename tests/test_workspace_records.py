"""Timeline, notes, checklists (templates, suggestions) and the audit log with chain verification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from cases.models import AuditEvent, Checklist, ChecklistItem, Note, NoteRevision, TimelineEvent
from cases.workspace import actions, timeline
from cases.workspace.imageinfo import parse_time
from cases.workspace.rendering import render_markdown
from scanner.models import Finding
from tests.ui import scenario

pytestmark = pytest.mark.django_db
demo = scenario.demo  # a fixture
scanned = scenario.scanned  # a fixture
team = scenario.team  # a fixture
HX = {"HTTP_HX_REQUEST": "true"}


# --- timeline ----------------------------------------------------------------------------------------------


def test_timeline_merges_history_evidence_scans_and_stored_events(web, case, scanned, alice):
    actions.change_status(case, alice, "contained", role="lead")
    entries = timeline.build(case)
    kinds = {e.kind for e in entries}
    assert {"history", "evidence", "scan", "status"} <= kinds
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    html = web.get(reverse("cases:timeline", args=[case.pk])).content.decode()
    assert (
        "Evidence received: victim.tar" in html
        and "Scan started" in html
        and "Status: Open → Contained" in html
    )
    assert 'datetime="' in html and "data-local" in html and " UTC" in html
    only = web.get(reverse("cases:timeline", args=[case.pk]) + "?kind=status").content.decode()
    assert "Status: Open → Contained" in only and "Evidence received" not in only


def test_image_history_times_are_parsed_as_utc():
    assert parse_time("2024-01-01T10:00:00.123456789Z") == datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("2024-01-01T12:00:00+02:00") == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert (
        parse_time("1970-01-01T00:00:00Z") is None
        and parse_time("<script>") is None
        and parse_time(5) is None
    )


def test_manual_entry_with_links_markdown_and_utc(team, demo):
    client = team.client("investigator")
    finding = Finding.objects.filter(case=demo).first()
    evidence = demo.evidence.first()
    response = client.post(
        reverse("cases:timeline", args=[demo.pk]),
        {
            "occurred_at": "2026-03-14 09:26:53",
            "title": "Pager fired",
            "kind": "manual",
            "body": "EDR flagged **xmrig** <script>alert(1)</script>",
            "findings": f"#{finding.pk}",
            "evidence": [evidence.pk],
        },
    )
    assert response.status_code == 302
    event = TimelineEvent.objects.get(case=demo, title="Pager fired")
    assert event.occurred_at == datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert list(event.findings.all()) == [finding] and list(event.evidence.all()) == [evidence]
    html = client.get(reverse("cases:timeline", args=[demo.pk])).content.decode()
    assert "<strong>xmrig</strong>" in html and "<script>alert(1)" not in html
    assert 'datetime="2026-03-14T09:26:53+00:00"' in html
    detail = client.get(reverse("cases:finding", args=[demo.pk, finding.pk])).content.decode()
    assert "Pager fired" in detail  # the finding links back to its timeline events
    bad = client.post(
        reverse("cases:timeline", args=[demo.pk]),
        {"occurred_at": "2026-03-14 09:00", "title": "x", "findings": "999999"},
    )
    assert bad.status_code == 200 and "Not findings of this case" in bad.content.decode()
    client.post(
        reverse("cases:timeline_edit", args=[demo.pk, event.pk]),
        {
            "occurred_at": "2026-03-14T08:00:00+01:00",
            "title": "Pager fired (edited)",
            "body": "",
            "findings": "",
            "kind": "manual",
        },
    )
    event.refresh_from_db()
    assert event.title == "Pager fired (edited)" and event.occurred_at == datetime(2026, 3, 14, 7, tzinfo=UTC)
    assert AuditEvent.objects.filter(case=demo, action="timeline.edited").exists()


# --- notes -------------------------------------------------------------------------------------------------


def test_markdown_is_sanitised():
    html = render_markdown(
        "# T\n\n<img src=x onerror=alert(1)> [ok](https://x.test) [bad](javascript:alert(1))\n\n"
        '<a href="#" onclick="alert(1)">c</a>\n\n| a | b |\n|---|---|\n| 1 | 2 |'
    )
    assert "<h1>T</h1>" in html and "<table>" in html
    assert (
        "onerror" not in html and "onclick" not in html and "javascript:" not in html and "<img" not in html
    )
    assert 'rel="noopener noreferrer nofollow"' in html


def test_notes_keep_their_edit_history(team, demo):
    client = team.client("investigator")
    client.post(reverse("cases:notes", args=[demo.pk]), {"title": "Triage notes", "body": "first *draft*"})
    note = Note.objects.get(case=demo)
    client.post(
        reverse("cases:note", args=[demo.pk, note.pk]), {"title": "Triage notes", "body": "second\n<script>x"}
    )
    team.client("lead").post(
        reverse("cases:note", args=[demo.pk, note.pk]), {"title": "Triage", "body": "third"}
    )
    revisions = list(NoteRevision.objects.filter(note=note).values_list("body", flat=True))
    assert revisions == ["first *draft*", "second\n<script>x", "third"]
    note.refresh_from_db()
    assert note.body == "third" and note.updated_by == team.lead and note.author == team.investigator
    html = client.get(reverse("cases:note", args=[demo.pk, note.pk])).content.decode()
    assert "+second" in html and "-first *draft*" in html and "<script>x" not in html
    listing = client.get(reverse("cases:notes", args=[demo.pk])).content.decode()
    assert "3 versions" in listing
    assert list(
        AuditEvent.objects.filter(case=demo, action__startswith="note.").values_list("action", flat=True)
    ) == ["note.added", "note.edited", "note.edited"]


# --- checklists --------------------------------------------------------------------------------------------


def test_registry_purge_lists_every_tag_and_digest(team, demo):
    client = team.client("investigator")
    client.post(reverse("cases:checklists", args=[demo.pk]), {"template": "registry-purge"})
    items = list(Checklist.objects.get(case=demo, slug="registry-purge").items.values_list("text", flat=True))
    image = demo.evidence.first().scans.first().images.first()
    for tag in image.repo_tags:
        assert f"Delete tag {tag} from the registry and every mirror" in items
    assert any(image.manifest_digest in text for text in items)


def test_all_five_checklist_templates_exist():
    from cases.playbooks import checklist_templates

    assert set(checklist_templates()) == {
        "key-rotation",
        "registry-purge",
        "ci-runner-wipe",
        "rebuild-pinned-digest",
        "enforce-signatures",
    }


def test_items_have_owner_due_done_and_note(team, demo):
    client = team.client("investigator")
    checklist = actions.add_checklist(demo, team.lead, "key-rotation")
    item = checklist.items.first()
    response = client.post(reverse("cases:checklist_item", args=[demo.pk, item.pk]), {"op": "toggle"}, **HX)
    assert response.status_code == 200 and f'id="item-{item.pk}"' in response.content.decode()
    item.refresh_from_db()
    assert item.done and item.done_by == team.investigator and item.done_at
    assert TimelineEvent.objects.filter(case=demo, kind="checklist", title=f"Done: {item.text}").exists()
    client.post(
        reverse("cases:checklist_item", args=[demo.pk, item.pk]),
        {"op": "save", "owner": team.lead.pk, "due": "2026-04-01", "note": "ticket SEC-42", "done": "on"},
    )
    item.refresh_from_db()
    assert (
        item.owner == team.lead
        and str(item.due) == "2026-04-01"
        and item.note == "ticket SEC-42"
        and item.done
    )
    client.post(reverse("cases:checklist_add", args=[demo.pk, checklist.pk]), {"text": "Tell the auditors"})
    assert checklist.items.filter(text="Tell the auditors").exists()
    html = client.get(reverse("cases:detail", args=[demo.pk])).content.decode()
    assert f"1 of {checklist.items.count()} checklist items done" in html


def test_findings_suggest_items(team, demo):
    client = team.client("investigator")
    html = client.get(reverse("cases:checklists", args=[demo.pk])).content.decode()
    assert "Rotate AKIA…MPLE" in html and "Pin shop/web:latest to a reviewed digest" in html
    assert "Wipe every CI runner that built or ran shop/web:latest" in html
    assert "AKIAIOSFODNN7EXAMPLE" not in html
    from cases.workspace.suggestions import suggestions

    rotate = next(s for s in suggestions(demo) if s.checklist == "key-rotation")
    client.post(reverse("cases:checklist_accept", args=[demo.pk]), {"key": rotate.key})
    item = ChecklistItem.objects.get(suggestion_key=rotate.key)
    assert item.checklist.slug == "key-rotation" and item.finding == rotate.finding
    assert item.text.startswith("Rotate AKIA…MPLE")
    assert rotate.key not in {s.key for s in suggestions(demo)}  # taken: no longer suggested
    detail = client.get(reverse("cases:finding", args=[demo.pk, rotate.finding.pk])).content.decode()
    assert item.text in detail  # the finding links to its checklist item


# --- audit -------------------------------------------------------------------------------------------------


def test_audit_tab_verifies_the_chain_and_detects_tampering(team, demo):
    client = team.client("viewer")
    actions.change_status(demo, team.lead, "contained", role="lead")
    ok = client.get(reverse("cases:audit", args=[demo.pk]) + "?verify=case").content.decode()
    assert "Chain intact" in ok and "case.status" in ok
    event = AuditEvent.objects.filter(case=demo, action="case.status").get()
    AuditEvent.objects.filter(pk=event.pk).update(
        data={"before": "open", "after": "closed"}
    )  # bypasses the ORM guard
    broken = client.get(reverse("cases:audit", args=[demo.pk]) + "?verify=case").content.decode()
    assert "Chain broken" in broken and f"event {event.pk}: content does not match" in broken


def test_audit_detects_a_removed_event(team, demo):
    from cases.workspace.audit import verify_all, verify_case

    for status in ("contained", "eradicated", "recovered"):
        actions.change_status(demo, team.lead, status, role="lead")
    middle = AuditEvent.objects.filter(case=demo, action="case.status").order_by("pk")[1]
    AuditEvent.objects.filter(pk=middle.pk)._raw_delete(AuditEvent.objects.db)
    result = verify_case(demo)
    assert not result.ok and any("does not link" in what for _pk, what in result.broken)
    assert not verify_all().ok
    team.viewer.is_staff = False
    assert (
        "verify=all" not in team.client("viewer").get(reverse("cases:audit", args=[demo.pk])).content.decode()
    )


def test_registry_purge_added_before_the_scan_can_be_refreshed(web, case, alice, tmp_path):
    from tests.ui.scenario import hostile_image, scan_in_process

    checklist = actions.add_checklist(case, alice, "registry-purge")
    assert checklist.items.filter(text__contains="no tags recorded yet").exists()
    image = scan_in_process(case, alice, hostile_image(tmp_path / "v.tar").path)
    web.post(reverse("cases:checklist_refresh", args=[case.pk, checklist.pk]))
    texts = list(checklist.items.values_list("text", flat=True))
    assert "Delete tag victim/app:latest from the registry and every mirror" in texts
    assert any(image.manifest_digest in text for text in texts)
    web.post(reverse("cases:checklist_refresh", args=[case.pk, checklist.pk]))
    assert checklist.items.count() == len(texts)  # idempotent


def test_ticking_an_item_updates_the_checklist_progress_out_of_band(team, demo):
    checklist = actions.add_checklist(demo, team.lead, "enforce-signatures")
    item = checklist.items.first()
    html = (
        team.client("investigator")
        .post(reverse("cases:checklist_item", args=[demo.pk, item.pk]), {"op": "toggle"}, **HX)
        .content.decode()
    )
    assert f'id="progress-{checklist.pk}" hx-swap-oob="true"' in html and "1 / 4 done" in html
