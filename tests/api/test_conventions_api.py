"""Conventions: one error body everywhere, throttling, and an OpenAPI schema that validates and covers
every route."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from .conftest import MINER

pytestmark = pytest.mark.django_db


def test_error_bodies(team, world):
    client = team.client("investigator")
    c = f"/api/cases/{world.case.pk}"
    invalid = client.post(f"{c}/timeline/", {"title": "x" * 301, "occurred_at": "yesterday"}, format="json")
    assert invalid.status_code == 400
    body = invalid.json()
    assert set(body) == {"detail", "code", "errors"} and set(body["errors"]) == {"title", "occurred_at"}
    assert body["detail"].startswith(("title: ", "occurred_at: "))
    nested = client.post(
        f"{c}/findings/bulk/", {"filter": {"severity": ["huge"]}, "status": "open"}, format="json"
    ).json()
    assert list(nested["errors"]) == ["filter.severity.0"]
    parse = client.generic("POST", f"{c}/notes/", "{not json", content_type="application/json")
    assert parse.status_code == 400 and parse.json()["code"] == "parse_error"
    media = client.generic("POST", f"{c}/notes/", "title=x", content_type="text/plain")
    assert media.status_code == 415 and media.json()["code"] == "unsupported_media_type"
    method = client.put(f"{c}/notes/{world.extra['note'].pk}/", {"title": "x"}, format="json")
    assert method.status_code == 405 and method.json()["code"] == "method_not_allowed"
    domain = client.patch(f"/api/findings/{world.findings[0].pk}/", {"status": "accepted"}, format="json")
    assert domain.status_code == 400 and domain.json()["errors"] == {
        "non_field_errors": [domain.json()["detail"]]
    }
    page = client.get(f"{c}/findings/", {"page": 999})
    assert page.status_code == 404 and page.json()["code"] == "not_found"
    unauthenticated = APIClient().get("/api/cases/")
    assert unauthenticated.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }
    bad_token = APIClient(HTTP_AUTHORIZATION="Token nope").get("/api/cases/")
    assert bad_token.status_code == 401 and bad_token.json()["code"] == "authentication_failed"


def test_throttling(team, world, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "search": "3/min"},
    }
    client = team.client("viewer")
    for _ in range(3):
        assert client.get("/api/search/", {"sha256": MINER}).status_code == 200
    throttled = client.get("/api/search/", {"sha256": MINER})
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled" and int(throttled["Retry-After"]) > 0
    assert team.client("lead").get("/api/search/", {"sha256": MINER}).status_code == 200  # per user
    assert client.get("/api/cases/").status_code == 200  # only the search family


def test_anonymous_and_user_throttles_are_on(team):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

    from cases.api.views import CaseViewSet

    classes = CaseViewSet().get_throttles()
    assert {type(t) for t in classes} >= {AnonRateThrottle, UserRateThrottle}
    assert api_settings.DEFAULT_THROTTLE_RATES["anon"] and api_settings.DEFAULT_THROTTLE_RATES["user"]


def test_schema_validates_and_covers_every_route(tmp_path, team):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    for route in (
        "/api/cases/",
        "/api/cases/{id}/",
        "/api/cases/{id}/evidence/",
        "/api/cases/{id}/findings/",
        "/api/cases/{id}/findings/bulk/",
        "/api/cases/{case_id}/members/",
        "/api/cases/{case_id}/members/{username}/",
        "/api/cases/{case_id}/timeline/",
        "/api/cases/{case_id}/timeline/{id}/",
        "/api/cases/{case_id}/notes/",
        "/api/cases/{case_id}/notes/{id}/",
        "/api/cases/{case_id}/notes/{id}/revisions/",
        "/api/cases/{case_id}/checklists/",
        "/api/cases/{case_id}/checklists/{id}/",
        "/api/cases/{case_id}/checklists/{id}/items/",
        "/api/cases/{case_id}/checklists/{checklist_id}/items/{id}/",
        "/api/evidence/{id}/",
        "/api/evidence/{id}/custody/",
        "/api/evidence/{id}/verify/",
        "/api/evidence/{id}/images/",
        "/api/images/{id}/",
        "/api/images/{id}/files/",
        "/api/images/{id}/graveyard/",
        "/api/images/{id}/tree/",
        "/api/findings/{id}/",
        "/api/search/",
        "/api/search/files/",
        "/api/search/findings/",
        "/api/search/evidence/",
        "/api/checklist-templates/",
        "/api/cases/{case_id}/exports/",
        "/api/cases/{case_id}/exports/{id}/",
        "/api/cases/{case_id}/exports/{id}/download/",
    ):
        assert route in paths, route
    for route, operations in paths.items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert {"401", "404", "429"} <= set(operation["responses"]), (route, method)
            assert any(code.startswith("2") for code in operation["responses"]), (route, method)
    assert set(schema["components"]["securitySchemes"]) >= {"tokenAuth", "cookieAuth"}
    served = APIClient()
    served.force_authenticate(team.viewer)
    assert served.get("/api/schema/").status_code == 200
