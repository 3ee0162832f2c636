"""Every string from an image is attacker-controlled: on every page that shows one, it renders as text.
Pages carry no inline script or style (the CSP would block it anyway)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from cases.workspace import actions
from scanner.models import FileRecord, Finding, Image
from tests.ui import scenario
from tests.ui.scenario import HOSTILE

pytestmark = pytest.mark.django_db
demo = scenario.demo  # a fixture
scanned = scenario.scanned  # a fixture
team = scenario.team  # a fixture
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
HX = {"HTTP_HX_REQUEST": "true"}


def pages(case, image, finding):
    hostile_path = FileRecord.objects.filter(image=image, path__contains="<img").values_list(
        "path", flat=True
    )[0]
    return {
        "list": reverse("cases:list"),
        "overview": reverse("cases:detail", args=[case.pk]),
        "images": reverse("cases:images", args=[case.pk]),
        "evidence": reverse("cases:evidence", args=[case.pk]),
        "image": reverse("cases:image_detail", args=[case.pk, image.pk])
        + "?view=layer&layer=5&path=/srv/app",
        "tree": reverse("cases:image_tree", args=[case.pk, image.pk]) + "?view=merged&path=/srv/app",
        "file": reverse("cases:image_file", args=[case.pk, image.pk]) + "?path=" + hostile_path,
        "graveyard": reverse("cases:graveyard", args=[case.pk, image.pk]),
        "findings": reverse("cases:findings", args=[case.pk]) + "?size=200",
        "finding": reverse("cases:finding", args=[case.pk, finding.pk]),
        "timeline": reverse("cases:timeline", args=[case.pk]),
        "notes": reverse("cases:notes", args=[case.pk]),
        "checklists": reverse("cases:checklists", args=[case.pk]),
        "audit": reverse("cases:audit", args=[case.pk]) + "?verify=case",
    }


# Pages whose content includes an attacker-controlled string from the demo image.
SHOWS_HOSTILE = {
    "overview",
    "images",
    "image",
    "tree",
    "file",
    "findings",
    "finding",
    "timeline",
    "checklists",
    "audit",
}


def test_hostile_strings_render_as_text_on_every_page(team, demo):
    lead = team.client("lead")
    image = Image.objects.get(scan__evidence__case=demo)
    finding = Finding.objects.filter(case=demo, path__contains="<img").first()
    # people's input is escaped too (and Markdown sanitised)
    actions.add_checklist(demo, team.lead, "registry-purge")  # tags include the hostile one
    actions.save_note(
        demo, team.lead, title=f"note {HOSTILE}", body=f"body {HOSTILE} <script>alert(3)</script>"
    )
    actions.comment(demo, team.lead, finding, f"comment {HOSTILE}")
    actions.triage(demo, team.lead, ids=[finding.pk], status="confirmed", reason=f"why {HOSTILE}")
    for name, url in pages(demo, image, finding).items():
        response = lead.get(url, **(HX if name == "tree" else {}))
        assert response.status_code == 200, (name, response.status_code)
        html = response.content.decode()
        assert HOSTILE not in html, name
        assert "<script>alert" not in html, name
        if name in SHOWS_HOSTILE:
            assert ESCAPED in html, name
        assert not re.search(r"\sstyle=", html), name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), name  # no inline script element
        assert not re.search(r"\son[a-z]+=", html.replace(ESCAPED, "")), name


def test_hostile_names_from_a_real_scan(web, case, scanned):
    urls = [
        reverse("cases:detail", args=[case.pk]),
        reverse("cases:image", args=[case.pk]),
        reverse("cases:image_detail", args=[case.pk, scanned.pk]) + "?view=layer&layer=1&path=/srv",
        reverse("cases:timeline", args=[case.pk]),
        reverse("cases:findings", args=[case.pk]),
    ]
    for url in urls:
        html = web.get(url).content.decode()
        assert HOSTILE not in html, url
