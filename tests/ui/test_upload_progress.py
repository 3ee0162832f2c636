"""The evidence upload shows a client-side progress bar with bytes sent, the rate and the time left, on a
throttled connection (Chromium's network emulation), and the SHA-256 once the server has the file."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from cases.models import Case, Evidence
from tests.ui.conftest import login, shot

pytestmark = [pytest.mark.tools, pytest.mark.django_db(transaction=True)]


def test_upload_progress_shows_bytes_rate_and_time_left(browser_page, live_server, alice, tmp_path):
    from playwright.sync_api import expect

    page = browser_page
    case = Case.open_case(lead=alice, title="Large upload")
    blob = tmp_path / "big-image.tar"
    blob.write_bytes(os.urandom(6 * 1024 * 1024))
    login(page, live_server)
    page.goto(f"{live_server.url}/cases/{case.pk}/evidence/")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 1_500_000},
    )
    page.set_input_files("input[type=file]", str(blob))
    page.click("text=Upload evidence")
    text = page.locator("[data-upload-progress] [data-field=text]")
    expect(text).to_contain_text(re.compile(r"MB of 6\.0+ MB sent · [\d.]+ [KM]B/s · \d+:\d\d left"))
    value = page.locator("[data-upload-progress] progress").evaluate("el => el.value")
    assert 0 < value < 100
    shot(page, "upload-in-progress")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(text).to_contain_text("Received big-image.tar", timeout=60_000)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    expect(text).to_contain_text(digest)
    assert Evidence.objects.get(case=case).sha256 == digest
    assert page.problems == [], page.problems
