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


def test_findings_keyboard_navigation(browser_page, live_server, alice):
    from playwright.sync_api import expect

    from cases.demo import build_demo_case

    page = browser_page
    case = build_demo_case(alice, findings=12, files=100)
    login(page, live_server)
    page.goto(f"{live_server.url}/cases/{case.pk}/findings/")
    page.keyboard.press("j")
    rows = page.locator("table.findings tbody tr[id^=finding-row-]")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#finding-panel h2")).to_be_visible()
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    finding_id = rows.nth(1).get_attribute("id").rsplit("-", 1)[1]
    expect(page.locator("#finding-panel")).to_contain_text(f"Finding #{finding_id}")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("c")
    expect(page.locator(f"#finding-row-{finding_id} .pill")).to_have_text("Confirmed")
    expect(page.locator(f"#finding-row-{finding_id}")).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("j")
    expect(rows.nth(2)).to_have_class(re.compile(r"\bselected\b"))
    shot(page, "findings-keyboard")
    assert page.problems == [], page.problems
