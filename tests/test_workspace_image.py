"""The image tab: config summary with secrets redacted, layers, the layer browser (a directory at a time,
per layer or merged), the graveyard, and recovery of a file's bytes recorded on the custody log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cases.models import AuditEvent, CaseMembership, CustodyEvent, Role
from cases.workspace import browser
from cases.workspace.redact import redact_env, redact_text
from scanner.models import FileRecord
from tests.ui import scenario
from tests.ui.scenario import HOSTILE

pytestmark = pytest.mark.django_db
scanned = scenario.scanned  # a fixture
HX = {"HTTP_HX_REQUEST": "true"}


def test_redaction():
    env = dict(
        (name, value)
        for name, value, _ in redact_env(
            [
                "PATH=/usr/bin",
                "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                "DB_PASSWORD=hunter2",
                "DATABASE_URL=postgres://app:s3cr3t@db/app",
                "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "NOTE=hello",
            ]
        )
    )
    assert env["PATH"] == "/usr/bin" and env["NOTE"] == "hello"
    assert "IOSFODNN7" not in env["AWS_ACCESS_KEY_ID"] and env["AWS_ACCESS_KEY_ID"].startswith("AKIA…")
    assert "hunter2" not in env["DB_PASSWORD"] and "s3cr3t" not in env["DATABASE_URL"]
    assert "abcdefghijklmnop" not in env["GITHUB_TOKEN"]
    command = (
        "/bin/sh -c curl -u admin:pw https://x && export API_KEY=abc123def456ghi789"
        " && echo AKIAIOSFODNN7EXAMPLE"
    )
    shown = redact_text(command)
    assert "abc123def456ghi789" not in shown and "IOSFODNN7" not in shown and "curl" in shown
    assert "hunter2" not in redact_text("mysql --password hunter2 -h db") and "-h db" in redact_text(
        "x --token t0k -h db"
    )
    for prose in (
        "Credentials in the image config or history",
        "A private key inside a file",
        "the token was rotated",
        "Secret found in layer 3",
    ):
        assert redact_text(prose) == prose


def test_image_tab_summary_layers_and_history(web, case, scanned):
    html = web.get(reverse("cases:image", args=[case.pk])).content.decode()
    assert "victim/app:latest" in html and scanned.config_digest in html
    assert "hunter2-prod" not in html and "AKIAIOSFODNN7EXAMPLE" not in html and "redacted" in html
    assert "runs as root" in html
    for layer in scanned.layers.all():
        assert layer.digest in html
    assert "Layer chart" in html and "Graveyard: 1 deleted or shadowed entry" in html


def test_browser_lists_one_directory_per_layer_and_merged(web, case, scanned):
    layer1 = scanned.layers.get(index=1)
    children, more = browser.list_directory(scanned, view="layer", layer=layer1, path="/")
    assert [(c.name, c.is_dir) for c in children] == [("srv", True), ("usr", True)] and not more
    children, _ = browser.list_directory(scanned, view="layer", layer=layer1, path="/usr/bin")
    miner = children[0]
    assert miner.name == ".hidden_miner" and miner.record.hidden_by == 2 and "setuid" in miner.record.flags
    merged, _ = browser.list_directory(scanned, view="merged", layer=None, path="/usr/bin")
    assert merged == []  # deleted by the whiteout: not in the final filesystem
    layer2 = scanned.layers.get(index=2)
    deleted, _ = browser.list_directory(scanned, view="layer", layer=layer2, path="/usr/bin")
    assert [(c.name, c.change) for c in deleted] == [(".hidden_miner", "deleted")]
    tree = reverse("cases:image_tree", args=[case.pk, scanned.pk])
    partial = web.get(tree + "?view=layer&layer=1&path=/usr/bin", **HX).content.decode()
    assert "<html" not in partial and ".hidden_miner" in partial and "L2 (whiteout)" in partial
    assert web.get(tree + "?view=layer&layer=1&path=/usr/bin").status_code == 302  # full page without htmx
    root = web.get(tree + "?view=merged&path=/", **HX).content.decode()
    assert "etc/" in root and "srv/" in root and "usr/" in root


def test_directory_listing_is_case_sensitive_and_bounded(web, case, scanned):
    layer = scanned.layers.get(index=0)
    FileRecord.objects.create(image=scanned, layer=layer, path="/ETC/shadow", type="file", change="added")
    FileRecord.objects.bulk_create(
        FileRecord(image=scanned, layer=layer, path=f"/etc/many/f{n:04d}", type="file", change="added")
        for n in range(browser.PAGE + 5)
    )
    children, _ = browser.list_directory(scanned, view="layer", layer=layer, path="/etc")
    assert "shadow" not in [c.name for c in children]
    children, more = browser.list_directory(scanned, view="layer", layer=layer, path="/etc/many")
    assert len(children) == browser.PAGE and more
    rest, more = browser.list_directory(
        scanned, view="layer", layer=layer, path="/etc/many", offset=browser.PAGE
    )
    assert len(rest) == 5 and not more


def test_graveyard_lists_what_later_layers_hid(web, case, scanned):
    html = web.get(reverse("cases:graveyard", args=[case.pk, scanned.pk])).content.decode()
    assert "/usr/bin/.hidden_miner" in html and "L2 · whiteout" in html and "Recover" in html
    empty = web.get(reverse("cases:graveyard", args=[case.pk, scanned.pk]) + "?q=nothing-here", **HX)
    assert "Nothing in the graveyard" in empty.content.decode()


def test_file_detail_shows_every_layer_that_touched_the_path(web, case, scanned):
    html = web.get(
        reverse("cases:image_file", args=[case.pk, scanned.pk]) + "?path=/usr/bin/.hidden_miner", **HX
    ).content.decode()
    assert "L1" in html and "L2" in html and "In the graveyard: whiteout by layer 2" in html
    assert web.get(reverse("cases:image_file", args=[case.pk, scanned.pk]) + "?path=/nope").status_code == 404


def test_recovering_a_deleted_file_streams_its_bytes_and_is_on_the_custody_log(web, case, scanned, alice):
    record = FileRecord.objects.get(image=scanned, path="/usr/bin/.hidden_miner", change="added")
    response = web.post(reverse("cases:recover", args=[case.pk, record.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body == b"\x7fELF" + b"\0" * 60
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="layer1-hidden_miner.bin"'
    assert "sandbox" in response["Content-Security-Policy"]
    event = CustodyEvent.objects.filter(evidence=scanned.scan.evidence, action="accessed").get()
    assert (
        event.actor == alice
        and event.detail["path"] == "/usr/bin/.hidden_miner"
        and event.detail["layer"] == 1
    )
    assert event.detail["sha256"] == record.sha256 and event.detail["hidden_by"] == 2
    assert AuditEvent.objects.filter(case=case, action="evidence.recovered").exists()
    log = web.get(reverse("cases:evidence", args=[case.pk])).content.decode()
    assert "recovered <code>/usr/bin/.hidden_miner</code> from layer 1" in log


def test_viewers_cannot_recover_and_whiteouts_have_no_bytes(web, case, scanned, make_user):
    from django.test import Client

    viewer = make_user("victor")
    CaseMembership.objects.create(case=case, user=viewer, role=Role.VIEWER)
    record = FileRecord.objects.get(image=scanned, path="/usr/bin/.hidden_miner", change="added")
    client = Client()
    client.force_login(viewer)
    assert client.post(reverse("cases:recover", args=[case.pk, record.pk])).status_code == 403
    whiteout = FileRecord.objects.get(image=scanned, path="/usr/bin/.hidden_miner", change="deleted")
    response = web.post(reverse("cases:recover", args=[case.pk, whiteout.pk]))
    assert response.status_code == 302
    assert not CustodyEvent.objects.filter(action="accessed").exists()


def test_hostile_file_names_render_as_text(web, case, scanned):
    tree = reverse("cases:image_tree", args=[case.pk, scanned.pk])
    html = web.get(tree + "?view=merged&path=/srv", **HX).content.decode()
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;.sh" in html
    page = web.get(
        reverse("cases:image_detail", args=[case.pk, scanned.pk]) + "?view=layer&layer=1&path=/srv"
    )
    assert HOSTILE not in page.content.decode()
    detail = web.get(reverse("cases:image_file", args=[case.pk, scanned.pk]), {"path": f"/srv/{HOSTILE}.sh"})
    assert detail.status_code == 200 and HOSTILE not in detail.content.decode()


@pytest.mark.parametrize(
    ("rule_id", "title"),
    [
        ("signature.verified", "Signed by release@example.com"),
        ("signature.invalid", "Signature does not verify"),
        ("signature.missing", "No signature for the manifest digest"),
    ],
)
def test_image_tab_shows_a_signature_badge(web, case, scanned, rule_id, title):
    from scanner.models import Finding

    before = web.get(reverse("cases:image", args=[case.pk])).content.decode()
    assert "not checked" in before
    Finding.objects.create(
        case=case,
        scan=scanned.scan,
        image=scanned,
        rule_id=rule_id,
        severity="info",
        title=title,
        detail=f"{HOSTILE} identity",
        fingerprint=rule_id,
    )
    html = web.get(reverse("cases:image", args=[case.pk])).content.decode()
    state = rule_id.removeprefix("signature.")
    assert f'class="pill sig-{state}"' in html and title in html and "not checked" not in html
    assert HOSTILE not in html  # the detail (attacker-influenced identity) is escaped in the tooltip
