"""Real-browser tests: Debian's Chromium driven by Playwright against pytest-django's live server, with a
real Celery worker (the integration tests' ``start_worker``) scanning what the browser uploads.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (``.ci/run`` installs it
with apt). Without it, or without the playwright package, these tests are skipped with the reason.
Screenshots of each step go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import isolated_store, start_worker  # noqa: F401 - fixtures shared with them

CHROMIUM = os.environ.get("LOWERDIR_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _skip_reason() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return ""


@pytest.fixture
def browser_page(live_server, settings, monkeypatch) -> Iterator[object]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still plain
    # synchronous calls between browser steps, so Django's async-safety guard does not apply to them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The live server speaks plain http: let the session and CSRF cookies through whatever the browser
    # thinks of Secure cookies on localhost.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # A viewer in Berlin: times show in UTC with the local time beside them.
        context = browser.new_context(
            viewport={"width": 1440, "height": 900}, timezone_id="Europe/Berlin", locale="en-GB"
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.problems = []
        page.on(
            "console",
            lambda msg: (
                page.problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
            ),
        )
        page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
        page.on(
            "dialog", lambda dialog: (page.problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
        )
        try:
            yield page
        finally:
            # Stop the page's polling and let in-flight requests finish before the database goes away.
            page.goto("about:blank")
            page.wait_for_timeout(500)
            context.close()
            browser.close()
            # ORM calls made while Playwright's loop runs open connections in that loop's context (Django's
            # connection handler follows contextvars): close them here, or PostgreSQL refuses to drop the
            # test database at the end of the session.
            from django.db import connections

            connections.close_all()


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, live_server, username: str = "alice") -> None:
    from tests.conftest import PASSWORD

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/cases/")
