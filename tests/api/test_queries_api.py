"""No N+1: every list costs the same number of queries on a small case and on one with many times the
rows (evidence, scans, images, layers, files, findings, comments, timeline links, notes, revisions,
checklist items, custody events, members, cases)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.models import Case, CaseMembership, Role
from cases.workspace import actions
from scanner.models import FileRecord

from .conftest import MINER, scanned_image, stored_evidence

pytestmark = [pytest.mark.django_db, pytest.mark.pdf]  # its fixture renders PDF exports


def list_urls(world) -> list[str]:
    c = f"/api/cases/{world.case.pk}"
    e, i = world.evidence.pk, world.image.pk
    note = world.extra["note"].pk
    return [
        "/api/cases/?page_size=500",
        f"{c}/evidence/?page_size=500",
        f"{c}/findings/?page_size=500",
        f"{c}/members/?page_size=500",
        f"{c}/timeline/?page_size=500",
        f"{c}/notes/?page_size=500",
        f"{c}/notes/{note}/revisions/?page_size=500",
        f"{c}/checklists/?page_size=500",
        f"{c}/exports/?page_size=500",
        f"{c}/",
        f"/api/evidence/{e}/custody/?page_size=500",
        f"/api/evidence/{e}/images/?page_size=500",
        f"/api/images/{i}/",
        f"/api/images/{i}/files/?page_size=500",
        f"/api/images/{i}/graveyard/?page_size=500",
        f"/api/images/{i}/tree/?path=/usr/lib",
        f"/api/findings/{world.findings[0].pk}/",
        f"/api/search/?sha256={MINER}",
        "/api/search/files/?path_prefix=/usr/&page_size=500",
        "/api/search/findings/?path_prefix=/&page_size=500",
        "/api/search/evidence/?path_prefix=/&page_size=500",
        "/api/checklist-templates/",
    ]


def grow(world, team, make_user) -> None:
    """Many more of every row the lists show."""
    case, lead = world.case, team.lead
    for n in range(5):
        other = Case.open_case(lead=lead, title=f"case {n}")
        CaseMembership.objects.create(case=other, user=team.viewer, role=Role.VIEWER)
        scanned_image(
            other, stored_evidence(other, lead, f"other {n}".encode()), files=20, findings=10, tag=f"o{n}"
        )
    for n in range(4):
        scanned_image(
            case, stored_evidence(case, lead, f"more {n}".encode()), files=50, findings=30, tag=f"m{n}"
        )
    for n in range(6):  # another scan of the same evidence, with its own image
        scanned_image(case, world.evidence, files=30, findings=10, tag=f"s{n}")
    FileRecord.objects.bulk_create(  # and many more records in the first image, the graveyard included
        FileRecord(
            image=world.image,
            layer=world.layers[n % 3],
            path=f"/usr/{'lib' if n % 2 else 'bin'}/g{n}",
            type="file",
            change="added",
            sha256=MINER if n % 7 == 0 else "",
            visible=n % 5 != 0,
            hidden_by=2 if n % 5 == 0 else None,
            hidden_how="whiteout" if n % 5 == 0 else "",
        )
        for n in range(300)
    )
    for n in range(8):
        member = make_user(f"member{n}")
        actions.add_member(case, lead, member, Role.INVESTIGATOR)
    findings = list(case.findings.all()[:40])
    for n in range(20):
        actions.add_timeline_entry(
            case,
            lead,
            occurred_at=case.created_at,
            title=f"t{n}",
            findings=findings[:n],
            evidence=[world.evidence],
        )
    for n in range(10):
        note = actions.save_note(case, lead, title=f"note {n}", body="x")
        actions.save_note(case, lead, title=f"note {n}", body="y", note=note)
    for n in range(12):
        actions.save_note(case, lead, title="First look", body=f"rev {n}", note=world.extra["note"])
    for slug in ("key-rotation", "registry-purge", "rebuild-pinned-digest"):
        checklist = actions.add_checklist(case, lead, slug)
        for item in checklist.items.all():
            actions.update_item(case, lead, item, {"owner": team.investigator, "done": True})
    for finding in findings[:10]:
        actions.comment(case, lead, world.findings[0], f"comment on {finding.pk}")
    actions.triage(case, lead, ids=[f.pk for f in findings], status="confirmed", assignee=team.viewer)
    from cases.postmortem.exports import request_export

    for fmt in ("pdf", "md", "json") * 4:
        request_export(case, team.viewer, fmt)
    from cases.custody import verify_evidence

    for _ in range(10):
        verify_evidence(world.evidence, lead)


def measure(client, urls) -> dict[str, int]:
    counts = {}
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        counts[url] = len(queries)
    return counts


def test_list_query_counts_do_not_grow(team, world, make_user, django_assert_max_num_queries):
    client = team.client("viewer")
    urls = list_urls(world)
    small = measure(client, urls)
    grow(world, team, make_user)
    for url in urls:
        with django_assert_max_num_queries(small[url]):
            response = client.get(url)
        assert response.status_code == 200
    big_findings = client.get(f"/api/cases/{world.case.pk}/findings/?page_size=500").json()
    assert big_findings["count"] > 150  # the big case really is bigger
    assert client.get(f"/api/images/{world.image.pk}/files/?page_size=500").json()["count"] > 150
