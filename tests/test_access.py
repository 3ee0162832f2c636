"""Authentication everywhere; a case you are not a member of does not exist (404), in the UI and the API."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.intake import receive_evidence
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def evidence(case, alice, small_image):
    from cases.uploads import HashingUploadHandler

    uploaded = upload_file(small_image.path)
    uploaded.sha256 = __import__("hashlib").sha256(small_image.path.read_bytes()).hexdigest()
    assert HashingUploadHandler  # the API path is covered in test_intake; here we only need a row
    return receive_evidence(case=case, uploaded=uploaded, user=alice)


@pytest.fixture
def mallory_api(mallory) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=mallory).key}")
    return client


def test_anonymous_is_sent_to_login(client, case):
    for url in (
        reverse("cases:list"),
        reverse("cases:detail", args=[case.pk]),
        reverse("cases:images", args=[case.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_anonymous_api_is_401(case, evidence):
    client = APIClient()
    for url in ("/api/cases/", f"/api/cases/{case.pk}/", f"/api/evidence/{evidence.pk}/"):
        response = client.get(url)
        assert response.status_code == 401, url
    assert client.post(f"/api/cases/{case.pk}/evidence/", {}).status_code == 401


def test_non_member_gets_404_in_the_ui(client, mallory, case, small_image):
    client.force_login(mallory)
    assert client.get(reverse("cases:detail", args=[case.pk])).status_code == 404
    assert client.get(reverse("cases:images", args=[case.pk])).status_code == 404
    response = client.post(reverse("cases:upload", args=[case.pk]), {"file": upload_file(small_image.path)})
    assert response.status_code == 404
    listing = client.get(reverse("cases:list"))
    assert case.key not in listing.content.decode()


def test_non_member_gets_404_in_the_api(mallory_api, case, evidence, small_image):
    assert mallory_api.get(f"/api/cases/{case.pk}/").status_code == 404
    assert mallory_api.get(f"/api/evidence/{evidence.pk}/").status_code == 404
    response = mallory_api.post(
        f"/api/cases/{case.pk}/evidence/", {"file": upload_file(small_image.path)}, format="multipart"
    )
    assert response.status_code == 404
    assert mallory_api.get("/api/cases/").json()["results"] == []
    assert evidence.case.evidence.count() == 1  # nothing was added


def test_member_sees_case_and_evidence(api, case, evidence):
    listing = api.get("/api/cases/").json()
    assert [c["key"] for c in listing["results"]] == [case.key]
    body = api.get(f"/api/evidence/{evidence.pk}/").json()
    assert body["sha256"] == evidence.sha256
    assert body["scan"] == {**body["scan"], "status": "queued", "progress": 0.0, "error": ""}
