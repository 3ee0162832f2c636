"""The evidence tab takes a registry reference as well as a file: checked at once, pulled by a worker."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from cases.models import Evidence

pytestmark = pytest.mark.django_db


def post(web, case, data, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = web.post(reverse("cases:upload", args=[case.pk]), data)
    return response, [str(m) for m in get_messages(response.wsgi_request)], callbacks


def test_reference_is_queued_for_a_worker(web, case, settings, django_capture_on_commit_callbacks):
    settings.LOWERDIR_REGISTRY_INSECURE = ["127.0.0.1:5000"]
    response, messages, callbacks = post(
        web, case, {"reference": "127.0.0.1:5000/team/app:latest"}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 302
    assert any(m.startswith("Pulling 127.0.0.1:5000/team/app:latest") for m in messages), messages
    assert len(callbacks) == 1  # the pull task is sent once the request commits
    assert not Evidence.objects.exists()  # evidence exists only once the worker has pulled and hashed it


def test_reference_to_a_private_address_is_refused_at_once(
    web, case, settings, django_capture_on_commit_callbacks
):
    settings.LOWERDIR_REGISTRY_INSECURE = []
    response, messages, callbacks = post(
        web, case, {"reference": "127.0.0.1:5000/team/app:latest"}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 302 and callbacks == []
    assert any("Cannot pull" in m and "127.0.0.1" in m for m in messages), messages


def test_file_or_reference_but_not_neither(web, case, django_capture_on_commit_callbacks):
    response, messages, callbacks = post(
        web, case, {"description": "nothing"}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 302 and callbacks == []
    assert any("file to upload or give a registry reference" in m for m in messages), messages


def test_viewer_cannot_queue_a_pull(client, make_user, case, django_capture_on_commit_callbacks):
    from cases.models import CaseMembership, Role

    viewer = make_user("vera")
    CaseMembership.objects.create(case=case, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("cases:upload", args=[case.pk]), {"reference": "docker.io/library/x:1"}
        )
    assert response.status_code == 403 and callbacks == []
