"""One whole investigator flow in a real browser against a live server and a real worker: log in, open a
case from a template, upload an image and watch the progress bars reach done, confirm a finding and see it
on the timeline, tick a checklist item, add a Markdown note, browse a layer and the graveyard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cases.models import CustodyEvent, Note, TimelineEvent
from scanner.models import Finding
from tests.conftest import PASSWORD
from tests.imagefactory import tamper
from tests.ui.conftest import shot
from tests.ui.scenario import HOSTILE, hostile_image

pytestmark = [pytest.mark.integration, pytest.mark.tools, pytest.mark.django_db(transaction=True)]


def test_investigator_flow(browser_page, live_server, start_worker, alice, tmp_path):
    from playwright.sync_api import expect

    page = browser_page
    image = hostile_image(tmp_path / "victim.tar", fmt="oci-archive")
    # Tamper with the first layer as well: a digest mismatch is always a (critical) finding, so the flow has
    # something to triage whatever rules are installed.
    tamper(image, image.layer_digests[0], lambda data: data + b"\0" * 1024)
    worker = start_worker()

    # Log in.
    page.goto(f"{live_server.url}/cases/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Cases")
    shot(page, "01-cases")

    # Open a case from the "poisoned image" template.
    page.fill("#id_title", "Poisoned victim/app:latest")
    page.select_option("#id_template", "builtin:poisoned-image")
    page.click("text=Open case")
    expect(page.locator("h1")).to_contain_text("Poisoned victim/app:latest")
    expect(page.locator(".casehead .sev")).to_have_text("Critical")  # the template's severity
    case_url = page.url

    # Upload: the client-side progress bar shows bytes sent, then the scan's bar reaches done.
    page.click("nav.tabs >> text=Evidence")
    page.set_input_files("input[type=file]", str(image.path))
    page.click("text=Upload evidence")
    progress = page.locator("[data-upload-progress] [data-field=text]")
    expect(progress).to_contain_text(re.compile(r"(sent|Received)"))
    expect(progress).to_contain_text("Received victim.tar", timeout=60_000)
    shot(page, "02-upload-done")
    page.wait_for_url(re.compile(r"/evidence/$"))
    try:
        expect(page.locator("[data-field=status]").first).to_have_text("succeeded", timeout=120_000)
    except AssertionError:
        raise AssertionError("scan did not finish; worker log:\n" + worker.output()) from None
    expect(page.locator("[data-field=percent]").first).to_have_text("done")
    assert page.locator("progress[data-field=progress]").first.evaluate("el => el.value") == 1
    shot(page, "03-scan-done")

    # Findings: open one in the side panel and confirm it (htmx), then see it on the timeline.
    page.click("nav.tabs >> text=Findings")
    rows = page.locator("table.findings tbody tr[id^=finding-row-]")
    expect(rows.first).to_be_visible()
    shot(page, "04-findings")
    rows.first.locator("td.title a").click()
    panel = page.locator("#finding-panel")
    expect(panel.locator("h2")).to_be_visible()
    finding_id = int(rows.first.get_attribute("id").rsplit("-", 1)[1])
    panel.locator("input[name=status][value=confirmed]").check()
    panel.locator("text=Save triage").click()
    expect(panel.locator(".pill.st-confirmed").first).to_have_text("Confirmed")
    expect(page.locator(f"#finding-row-{finding_id} .pill")).to_have_text(
        "Confirmed"
    )  # row swapped out of band
    panel.locator("textarea[name=body]").fill("Confirmed on the **prod** nodes")
    panel.locator("text=Comment").last.click()
    expect(panel.locator("ol.comments strong")).to_have_text("prod")
    shot(page, "05-finding-confirmed")
    assert Finding.objects.get(pk=finding_id).status == "confirmed"

    page.click("nav.tabs >> text=Timeline")
    expect(page.locator("ol.timeline")).to_contain_text("Finding confirmed")
    expect(page.locator("ol.timeline")).to_contain_text("Evidence received: victim.tar")
    expect(page.locator("ol.timeline")).to_contain_text("Scan finished")
    expect(page.locator("ol.timeline time .local").first).to_contain_text("CET")  # local time beside UTC
    shot(page, "06-timeline")
    assert TimelineEvent.objects.filter(kind="finding", findings=finding_id).exists()

    # Checklists: tick the first item (htmx swaps the item in place).
    page.click("nav.tabs >> text=Checklists")
    first_item = page.locator("li.item").first
    first_item.locator("button.tick").click()
    expect(page.locator("li.item").first).to_have_class(re.compile(r"\bdone\b"))
    shot(page, "07-checklists")

    # Notes: Markdown rendered, HTML removed.
    page.click("nav.tabs >> text=Notes")
    page.fill("#id_title", "Initial triage")
    page.fill(
        "#id_body",
        "Pulled by **latest** during the push window.\n\n- rotate keys\n- purge <b>registry</b>\n\n"
        "<script>alert(1)</script>",
    )
    page.click("text=Save note")
    note = page.locator("article.note .md")
    expect(note.locator("strong")).to_have_text("latest")
    expect(note.locator("li")).to_have_count(2)
    shot(page, "08-notes")
    assert Note.objects.get().revisions.count() == 1

    # Layer browser: layer 1, /usr/bin, the hidden miner in the graveyard; the hostile name stays text.
    page.click("nav.tabs >> text=Image")
    browser = page.locator("#browser")
    browser.locator("a.seg", has_text="L1").click()
    expect(browser.locator("a.seg.active")).to_have_text("L1")
    browser.locator("td.name a", has_text="usr/").click()
    browser.locator("td.name a", has_text="bin/").click()
    expect(page).to_have_url(re.compile(r"path=%2Fusr%2Fbin"))
    miner = browser.locator("tr", has_text=".hidden_miner")
    expect(miner).to_contain_text("L2 (whiteout)")
    miner.locator("td.name a").click()
    expect(page.locator("#filepanel")).to_contain_text("In the graveyard: whiteout by layer 2")
    shot(page, "09-layer-browser")
    browser.locator("nav.path a", has_text="root").click()
    expect(page).to_have_url(re.compile(r"path=%2F(&|$)"))
    browser.locator("td.name a", has_text="srv/").click()
    expect(page).to_have_url(re.compile(r"path=%2Fsrv"))
    expect(browser.locator("td.name").first).to_have_text(f"·{HOSTILE}.sh")  # shown as text, not an element
    assert page.locator("#browser img").count() == 0
    browser.locator("a.seg", has_text="Merged").click()
    expect(browser.locator("a.seg.active")).to_have_text("Merged")

    page.click("text=Graveyard:")
    expect(page.locator("table.graveyard")).to_contain_text("/usr/bin/.hidden_miner")
    with page.expect_download() as download:
        page.locator("table.graveyard tr", has_text=".hidden_miner").locator("text=Recover").click()
    assert download.value.suggested_filename == "layer1-hidden_miner.bin"
    assert Path(download.value.path()).read_bytes()[:4] == b"\x7fELF"
    shot(page, "10-graveyard")
    assert CustodyEvent.objects.filter(action="accessed").count() == 1

    page.goto(case_url)
    expect(page.locator("#images svg")).to_have_count(1)
    shot(page, "11-overview")
    page.click("nav.tabs >> text=Audit")
    page.click("text=Verify this case's chain")
    expect(page.locator(".flash.success")).to_contain_text("Chain intact")
    shot(page, "12-audit")

    assert page.problems == [], page.problems  # no CSP violation, script error or alert() anywhere
