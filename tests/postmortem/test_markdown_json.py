"""Markdown and JSON: the same sections and facts as the PDF, from the same context; image strings cannot
become Markdown or HTML; no secret whole."""

from __future__ import annotations

import json
import re

import markdown as markdown_lib
import pytest
from django.urls import reverse

from cases.postmortem import context
from cases.postmortem.markdown import code, prose, text
from tests.postmortem.conftest import HOSTILE_PATH, HOSTILE_TAG, SECRETS

pytestmark = pytest.mark.django_db


def test_markdown_has_every_section_and_fact(worked, web):
    response = web.get(reverse("cases:postmortem_md", args=[worked.case.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "text/markdown; charset=utf-8"
    md = response.content.decode()
    for _id, heading in context.SECTIONS:
        assert f"## {heading}\n" in md, heading
    assert md.startswith(f"# {worked.case.key} post-mortem: Poisoned image\n")
    assert "**TLP:AMBER** · Confidential" in md
    assert worked.archive_sha256 in md
    assert f"`{worked.image.manifest_digest}`" in md and f"`{worked.image.config_digest}`" in md
    assert "`/usr/bin/.hidden_miner`" in md
    assert "- [x] Inventory every credential" in md and "- [ ] " in md  # checklist items, done and open
    assert "### Critical (" in md and "Triage: Confirmed by alice" in md
    assert "CPU alerts on the web tier" in md and "#### Where we got lucky" in md
    for secret in SECRETS:
        assert secret not in md, secret


def test_markdown_cannot_be_hijacked_by_image_strings(worked, web):
    md = web.get(reverse("cases:postmortem_md", args=[worked.case.pk])).content.decode()
    # The hostile path appears only inside code spans (literal in every Markdown renderer) ...
    assert f"`{HOSTILE_PATH}`" in md
    # ... or escaped in text (the finding's title), never as markup a renderer would act on.
    outside_code = re.sub(r"(`+).*?\1", "", md)
    assert not re.search(r"(?<!\\)<(img|link)", outside_code)  # outside code, only as \<img
    assert r"victim/app:\<img src=" in outside_code  # the tag, in a checklist item's text
    html = markdown_lib.markdown(md, extensions=["tables"])
    assert "<img" not in html and "<link" not in html
    assert "&lt;img src=" in html
    assert HOSTILE_TAG.split(":", 1)[1] in html.replace("&lt;", "<").replace("&gt;", ">").replace(
        "&quot;", '"'
    )


def test_markdown_escaping_helpers():
    assert text("a|b <img src=x> *b* _c_ [l](u)") == r"a\|b \<img src=x\> \*b\* \_c\_ \[l\](u)"
    assert text("# not a heading") == r"\# not a heading"
    assert text("1. not a list") == r"1\. not a list"
    assert text("two\nlines") == "two lines"
    assert code("/usr/bin/x") == "`/usr/bin/x`"
    assert code("a`b") == "`` a`b ``"
    assert code("x|y", cell=True) == r"`x\|y`"
    assert code("") == ""
    assert prose("hi <script>x</script> `<b>`") == "hi &lt;script>x&lt;/script> `<b>`"
    assert prose("```\n<i>\n```\nend <b>") == "```\n<i>\n```\nend &lt;b>"


def test_json_is_the_same_context(worked, web):
    response = web.get(reverse("cases:postmortem_json", args=[worked.case.pk]) + "?tlp=clear")
    assert response["Content-Type"] == "application/json"
    doc = json.loads(response.content)
    assert doc["schema"] == "lowerdir.postmortem/v1"
    assert doc["case"]["key"] == worked.case.key and doc["export"]["tlp"] == "TLP:CLEAR"
    assert [s["heading"] for s in doc["sections"]] == [h for _i, h in context.SECTIONS]
    assert doc["export"]["evidence_sha256"] == [worked.archive_sha256]
    assert doc["evidence"][0]["custody"][0]["action"] == "received"
    image = doc["images"][0]
    assert image["manifest_digest"] == worked.image.manifest_digest
    assert [layer["digest"] for layer in image["layers"]] == list(
        worked.image.layers.order_by("index").values_list("digest", flat=True)
    )
    total = doc["summary"]["findings"]
    assert total == len(doc["findings"]) + len(doc["false_positives"]) + len(doc["suppressed"])
    assert doc["false_positives"] and all(f["status"] == "false_positive" for f in doc["false_positives"])
    assert all(f["status"] != "false_positive" for f in doc["findings"])
    assert any(f["path"] == HOSTILE_PATH for f in doc["findings"])
    assert doc["checklists"] and doc["checklists"][0]["items"][0]["done"] is True
    assert {rule["id"] for rule in doc["rules"]} >= {"file.hidden-executable", "secret.env"}
    assert any(rule["in_catalogue"] and rule["remediation"] for rule in doc["rules"])
    assert doc["timeline"] == sorted(doc["timeline"], key=lambda t: t["at"])
    raw = response.content.decode()
    for secret in SECRETS:
        assert secret not in raw, secret
