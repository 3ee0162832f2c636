"""Schemathesis against the live schema (``/api/schema/``), in-process through Django's WSGI handler (no
network), authenticated as an investigator: for every operation, schema-valid and schema-invalid inputs,
with random path parameters (mostly 404s) and with the ids of real rows of the investigator's case. No
response may be a 5xx, and every response must match the schema (status code, content type, body).

Bounded: ``LOWERDIR_FUZZ_EXAMPLES`` examples per operation, mode and id source (default 8), derandomised
so a run is repeatable; set it higher for a longer hunt.
"""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("LOWERDIR_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def wsgi_app(settings):
    """Django's WSGI handler, in this thread and this test's transaction. Like Django's test client, keep
    the request signals from closing the connection (it would end the test's transaction)."""
    settings.LOWERDIR_REGISTRY_ALLOWLIST = ["registry.fuzz.invalid"]  # never resolve a fuzzed host name
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def id_patterns(world) -> list[tuple[str, int]]:
    checklist = world.extra["checklist"]
    return [
        (r"^/api/cases/\{id\}/", world.case.pk),
        (r"^/api/evidence/", world.evidence.pk),
        (r"^/api/images/", world.image.pk),
        (r"^/api/findings/", world.findings[0].pk),
        (r"/timeline/\{id\}/", world.extra["entry"].pk),
        (r"/notes/\{id\}/", world.extra["note"].pk),
        (r"/items/\{id\}/", checklist.items.first().pk),
        (r"/checklists/\{id\}/", checklist.pk),
        (r"/exports/\{id\}/", world.extra["export"].pk),
    ]


def real_ids(path: str, world, patterns) -> dict:
    """Path parameters naming real rows of the investigator's case (ids taken before any request)."""
    ids = {"case_id": world.case.pk, "username": "viewer-user", "checklist_id": world.extra["checklist"].pk}
    for pattern, value in patterns:
        if re.search(pattern, path):
            ids["id"] = value
            break
    names = set(re.findall(r"\{(\w+)\}", path))
    return {name: value for name, value in ids.items() if name in names}


def test_fuzz_the_api_as_an_investigator(team, world, wsgi_app):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
    headers = {"Authorization": f"Token {team.client('investigator')._credentials['HTTP_AUTHORIZATION'][6:]}"}
    failures: list[str] = []
    operations = 0
    patterns = id_patterns(world)
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        sources = [None, real_ids(operation.path, world, patterns)] if "{" in operation.path else [None]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in sources:
                strategy = operation.as_strategy(
                    generation_mode=mode, path_parameters=path_parameters or None
                )

                @given(case=strategy)
                @hypothesis_settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def run(case):
                    case.call_and_validate(headers=headers, checks=CHECKS)

                try:
                    run()
                except Unsatisfiable:
                    # negative data with every path parameter fixed and nothing else to break
                    assert mode is GenerationMode.NEGATIVE and path_parameters
                except Exception as error:  # noqa: BLE001 - collected, reported together below
                    label = f"{operation.method.upper()} {operation.path} [{mode.value}"
                    label += ", real ids]" if path_parameters else "]"
                    failures.append(f"{label}: {str(error)[:1500]}")
    assert operations >= 40
    assert not failures, "\n\n".join(failures)
