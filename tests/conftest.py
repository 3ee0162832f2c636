"""Shared fixtures for the Django tests: users, clients, cases and small image archives."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.imagefactory import BuiltImage, Entry, build_image

PASSWORD = "correct horse battery staple"


def _weasyprint_problem() -> str:
    """WeasyPrint needs Pango from the system; a fresh machine without it skips the PDF tests."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"WeasyPrint cannot load its system libraries (Debian: libpango-1.0-0): {exc}"
    return ""


def pytest_collection_modifyitems(config, items) -> None:
    if not any(item.get_closest_marker("pdf") for item in items):
        return
    if problem := _weasyprint_problem():
        for item in items:
            if item.get_closest_marker("pdf"):
                item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(autouse=True)
def isolated_store(settings, tmp_path: Path) -> Path:
    """Each test gets an empty evidence store (integration tests, whose worker shares the session's
    store, override this fixture)."""
    store = tmp_path / "store"
    settings.MEDIA_ROOT = store
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "location": store},
        },
    }
    return store


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def mallory(make_user):
    return make_user("mallory")


@pytest.fixture
def api(alice):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    return client


@pytest.fixture
def web(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def case(alice):
    from cases.models import Case

    return Case.open_case(lead=alice, title="Poisoned image", summary="latest was pushed by the attacker")


@pytest.fixture
def small_image(tmp_path: Path) -> BuiltImage:
    """A three-layer docker-archive: a file, a setuid binary, then a whiteout that hides it."""
    return build_image(
        tmp_path / "small.tar",
        [
            [Entry("etc/", type="dir", mode=0o755), ("etc/os-release", b"ID=debian\n")],
            [
                Entry("usr/bin/", type="dir", mode=0o755),
                Entry("usr/bin/.hidden_miner", b"\x7fELF" + b"\0" * 60, mode=0o4755),
            ],
            [Entry("usr/bin/.wh..hidden_miner")],
        ],
        repo_tags=["victim/app:latest"],
        config={"User": "root", "Env": ["PATH=/usr/bin"]},
    )


def upload_file(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="application/x-tar")
