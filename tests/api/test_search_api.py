"""The pivot: a hash, a path or a rule id across every case the caller is a member of, and nothing from
any other case — in the API and on the search page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cases.models import Case, CaseMembership, Role

from .conftest import MINER, scanned_image, stored_evidence

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_cases(team, world):
    """The outsider's own case holds the same miner (same hash, same path)."""
    theirs = Case.open_case(lead=team.outsider, title="Their miner")
    evidence = stored_evidence(theirs, team.outsider, b"their archive")
    return scanned_image(theirs, evidence, tag="b")


def _cases(section) -> set[str]:
    return {row["case"]["key"] for row in section["results"]}


def test_pivot_finds_the_hash_in_every_visible_case_and_nowhere_else(team, world, two_cases):
    mine, theirs = world.case, two_cases.case
    lead = team.client("lead").get("/api/search/", {"sha256": MINER}).json()
    assert lead["files"]["count"] == 1 and _cases(lead["files"]) == {mine.key}
    assert lead["findings"]["count"] == 1 and _cases(lead["findings"]) == {mine.key}
    assert _cases(lead["evidence"]) == {mine.key}
    outsider = team.client("outsider").get("/api/search/", {"sha256": "sha256:" + MINER.upper()}).json()
    assert _cases(outsider["files"]) == {theirs.key} and _cases(outsider["findings"]) == {theirs.key}
    assert _cases(outsider["evidence"]) == {theirs.key}
    # once the lead is a member of both, the same query shows both
    CaseMembership.objects.create(case=theirs, user=team.lead, role=Role.VIEWER)
    both = team.client("lead").get("/api/search/files/", {"sha256": MINER}).json()
    assert both["count"] == 2 and {r["case"]["key"] for r in both["results"]} == {mine.key, theirs.key}
    assert {r["evidence_sha256"] for r in both["results"]} == {
        world.evidence.sha256,
        two_cases.evidence.sha256,
    }
    # someone in no case sees nothing at all
    from rest_framework.test import APIClient

    from .conftest import token_client

    nobody = token_client(type(team.lead).objects.create_user("nobody"))
    for kind in ("files", "findings", "evidence"):
        assert nobody.get(f"/api/search/{kind}/", {"sha256": MINER}).json()["count"] == 0
    assert APIClient().get("/api/search/", {"sha256": MINER}).status_code == 401


def test_pivot_by_path_rule_and_evidence_hash(team, world, two_cases):
    client = team.client("viewer")
    exact = client.get("/api/search/files/", {"path": "/usr/bin/.hidden_miner"}).json()
    assert exact["count"] == 2 and {r["change"] for r in exact["results"]} == {"added", "deleted"}
    prefix = client.get("/api/search/files/", {"path_prefix": "/usr/lib/"}).json()
    assert prefix["count"] == 6
    assert client.get("/api/search/files/", {"path_prefix": "/USR/"}).json()["count"] == 0
    assert client.get("/api/search/files/", {"path": "/usr/bin/"}).json()["count"] == 0  # exact, not prefix
    rule = client.get("/api/search/", {"rule_id": "malware.yara"}).json()
    assert rule["findings"]["count"] == 1 and rule["files"]["count"] == 0
    assert _cases(rule["evidence"]) == {world.case.key}
    archive = client.get("/api/search/evidence/", {"sha256": world.evidence.sha256}).json()
    assert [e["id"] for e in archive["results"]] == [world.evidence.pk]
    combined = client.get("/api/search/findings/", {"rule_id": "malware.yara", "path_prefix": "/etc/"}).json()
    assert combined["count"] == 0
    for bad in ({}, {"sha256": "abc"}, {"path": "a\x00b"}):
        response = client.get("/api/search/", bad)
        assert response.status_code == 400, bad
        assert response.json()["detail"]


def test_search_page(client, team, world, two_cases):
    client.force_login(team.viewer)
    page = client.get(reverse("cases:list")).content.decode()
    assert 'action="/search/"' in page and 'name="q"' in page  # the box in the top bar
    html = client.get("/search/", {"q": MINER}).content.decode()
    assert world.case.key in html and two_cases.case.key not in html
    assert reverse("cases:finding", args=[world.case.pk, world.findings[0].pk]) in html
    assert "/usr/bin/.hidden_miner" in html and "hidden by L2" in html
    listing = client.get("/search/", {"q": "/usr/lib/"}).content.decode()
    assert '<h2>Files</h2><span class="muted">6' in listing and "/usr/lib/f00005" in listing
    assert "malware.yara" in client.get("/search/", {"q": "malware.yara"}).content.decode()
    assert client.get("/search/").status_code == 200
    client.logout()
    assert client.get("/search/", {"q": MINER}).status_code == 302  # login first


def test_search_page_escapes_paths(client, team, world):
    from scanner.models import FileRecord

    FileRecord.objects.create(
        image=world.image,
        layer=world.layers[0],
        path="/tmp/<script>alert(1)</script>",
        type="file",
        change="added",
        sha256=MINER,
    )
    client.force_login(team.lead)
    html = client.get("/search/", {"q": MINER}).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
