"""The web app: a reference posted to the evidence API is pulled by a worker task into the evidence store,
with a custody record of where it came from and what the tag resolved to, then scanned."""

from __future__ import annotations

import pytest

from tests.imagefactory import build_image

pytestmark = pytest.mark.django_db


def evidence_url(case) -> str:
    return f"/api/cases/{case.pk}/evidence/"


@pytest.fixture
def pushed(registry, tmp_path):
    image = build_image(tmp_path / "web", [[("etc/motd", b"from the registry\n")]], fmt="oci",
                        repo_tags=["3"])
    registry.skopeo_push(image.path, "team/web:3", tag="3")
    return image


def test_reference_is_pulled_stored_with_custody_and_scanned(
    api, case, registry, pushed, settings, django_capture_on_commit_callbacks
) -> None:
    from cases.models import CustodyEvent, Evidence
    from scanner.models import Finding, ScanRun, ScanStatus
    from scanner.tasks import scan_evidence

    settings.LOWERDIR_REGISTRY_INSECURE = [registry.host]
    settings.LOWERDIR_REQUIRE_SIGNATURE = True
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(evidence_url(case), {"reference": f"{registry.host}/team/web:3"}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"reference": f"{registry.host}/team/web:3", "status": "queued"}
    assert len(callbacks) == 1

    from scanner.pull import pull_reference

    with django_capture_on_commit_callbacks(execute=False):
        evidence_id = pull_reference(case.pk, f"{registry.host}/team/web:3", case.lead.pk)
    evidence = Evidence.objects.get(pk=evidence_id)
    assert evidence.storage_key.startswith(f"evidence/sha256/{evidence.sha256[:2]}/")
    event = CustodyEvent.objects.get(evidence=evidence)
    assert event.detail["how"] == "pulled"
    assert event.detail["pulled"].startswith(f"pulled from {registry.host}/team/web at ")
    assert f"3 resolved to {pushed.manifest_digest}" in event.detail["pulled"]
    run = ScanRun.objects.get(evidence=evidence)
    scan_evidence(run.pk)
    run.refresh_from_db()
    assert run.status == ScanStatus.SUCCEEDED, run.error
    rules = dict(Finding.objects.filter(scan=run).values_list("rule_id", "severity"))
    assert rules["signature.missing"] == "high"
    assert "reference.mutable-tag" in rules


def test_bad_references_are_400_at_once(api, case, registry) -> None:
    bad = api.post(evidence_url(case), {"reference": "http://evil/x"}, format="json")
    assert bad.status_code == 400 and "not an image reference" in bad.json()["errors"]["reference"][0]
    private = api.post(evidence_url(case), {"reference": f"{registry.host}/team/web:3"}, format="json")
    assert private.status_code == 400 and "non-public address" in private.json()["errors"]["reference"][0]


def test_failed_pull_is_audited(case, registry, settings) -> None:
    from cases.models import AuditEvent, Evidence
    from scanner.pull import pull_reference

    settings.LOWERDIR_REGISTRY_INSECURE = [registry.host]
    assert pull_reference(case.pk, f"{registry.host}/team/missing:1", case.lead.pk) is None
    event = AuditEvent.objects.filter(action="evidence.pull_failed").get()
    assert "not found" in event.data["error"]
    assert not Evidence.objects.exists()
