"""Persisting engine reports: hostile text is stored visibly, retries replace rather than duplicate."""

from __future__ import annotations

import pytest

from cases.intake import receive_evidence
from scanner.engine.model import (
    EntryType,
    FileEntry,
    GraveyardEntry,
    ImageResult,
    LayerResult,
    ScanReport,
    Severity,
    SourceInfo,
)
from scanner.engine.model import (
    Finding as EngineFinding,
)
from scanner.models import FileRecord, Finding, Image, ScanRun
from scanner.persist import db_json, db_text, store_report
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(case, alice, small_image) -> ScanRun:
    uploaded = upload_file(small_image.path)
    uploaded.sha256 = "f" * 64
    return ScanRun.objects.get(evidence=receive_evidence(case=case, uploaded=uploaded, user=alice))


def report_with(files: list[FileEntry], **image) -> ScanReport:
    layers = [LayerResult(index=i, digest=f"sha256:{i:064d}") for i in range(2)]
    result = ImageResult(
        manifest_digest="sha256:" + "a" * 64,
        config_digest="sha256:" + "b" * 64,
        layers=layers,
        files=files,
        **image,
    )
    return ScanReport(source=SourceInfo(path="x.tar", format="docker-archive"), images=[result])


def test_db_text_keeps_ordinary_text_and_escapes_the_rest():
    assert db_text("/usr/bin/ls") == "/usr/bin/ls"
    assert db_text("/tmp/caf\u00e9") == "/tmp/caf\u00e9"
    raw = b"/bin/\xff\xfeevil".decode("utf-8", "surrogateescape")
    assert db_text(raw) == "/bin/\\xff\\xfeevil"
    assert db_text("a\x00b") == "a\\x00b"
    assert db_json({"Env": ["K=\x00"], "k\x00": 1}) == {"Env": ["K=\\x00"], "k\\x00": 1}


def test_hostile_strings_are_stored(run):
    hostile = b"/usr/bin/\xff<script>".decode("utf-8", "surrogateescape") + "\x00x"
    files = [
        FileEntry(
            path=hostile, layer_index=0, type=EntryType.FILE, sha256="c" * 64, flags=frozenset({"hidden"})
        ),
        FileEntry(path="/etc/passwd", layer_index=1, type=EntryType.SYMLINK, link_target="../../\x00etc"),
    ]
    report = report_with(files, config={"config": {"Env": ["AWS_SECRET=\x00abc"]}}, user="root\x00")
    report.images[0].findings.append(
        EngineFinding(
            rule_id="integrity.digest-mismatch",
            severity=Severity.CRITICAL,
            title="t\x00",
            layer_index=1,
            path=hostile,
        )
    )
    store_report(run, report)
    stored = {r.path: r for r in FileRecord.objects.filter(image__scan=run)}
    assert set(stored) == {"/usr/bin/\\xff<script>\\x00x", "/etc/passwd"}
    assert stored["/etc/passwd"].link_target == "../../\\x00etc"
    image = Image.objects.get(scan=run)
    assert image.user == "root\\x00" and image.config["config"]["Env"] == ["AWS_SECRET=\\x00abc"]
    finding = Finding.objects.get(scan=run)
    assert finding.layer.index == 1 and finding.path.startswith("/usr/bin/\\xff")


def test_storing_again_replaces_rows(run):
    files = [FileEntry(path=f"/f{i}", layer_index=i % 2, type=EntryType.FILE) for i in range(12_000)]
    graveyard = [
        GraveyardEntry(path="/f0", type=EntryType.FILE, added_layer=0, hidden_layer=1, how="whiteout")
    ]
    report = report_with(files, graveyard=graveyard)
    store_report(run, report)
    store_report(run, report)
    assert Image.objects.filter(scan=run).count() == 1
    assert FileRecord.objects.filter(image__scan=run).count() == 12_000
    hidden = FileRecord.objects.get(image__scan=run, path="/f0")
    assert (hidden.hidden_by, hidden.hidden_how, hidden.layer.index) == (1, "whiteout", 0)


def test_rule_pack_fields_are_stored(run):
    """The rule pack's finding fields (issue 4): redacted excerpt, remediation, hiding layer, links and an
    explicit suppression survive storage; storable text only."""
    report = report_with([FileEntry(path="/usr/bin/.hidden_miner", layer_index=0, type=EntryType.FILE)])
    grave = EngineFinding(
        rule_id="layer.deleted-file",
        severity=Severity.HIGH,
        title="deleted",
        layer_index=0,
        path="/usr/bin/.hidden_miner",
        sha256="d" * 64,
        fingerprint="1" * 64,
        hidden_layer_index=1,
        related=["2" * 64],
        remediation="Recover it and analyse it.",
    )
    secret = EngineFinding(
        rule_id="secret.file",
        severity=Severity.CRITICAL,
        title="creds",
        layer_index=0,
        path="/root/.env",
        fingerprint="2" * 64,
        excerpt="wJal…[40 chars, sha256:78314b11be2e5815]\x00",
        suppressed=True,
        suppression="suppressed by alice: lab sample (rules/s.yml:3)",
    )
    report.images[0].findings += [grave, secret]
    store_report(run, report)
    stored = {f.rule_id: f for f in Finding.objects.filter(scan=run)}
    g, s = stored["layer.deleted-file"], stored["secret.file"]
    assert (g.hidden_layer_index, g.related, g.remediation) == (1, ["2" * 64], "Recover it and analyse it.")
    assert g.layer.index == 0 and not g.suppressed and g.excerpt == ""
    assert s.suppressed and s.suppression.startswith("suppressed by alice") and s.hidden_layer_index is None
    assert s.excerpt == "wJal…[40 chars, sha256:78314b11be2e5815]\\x00"


def test_triage_survives_a_rescan_in_the_same_case_only(run, case, alice, mallory, small_image):
    from cases.models import Case
    from scanner.models import TriageStatus

    def finding_report() -> ScanReport:
        report = report_with([FileEntry(path="/usr/bin/x", layer_index=0, type=EntryType.FILE)])
        report.images[0].findings.append(
            EngineFinding(
                rule_id="file.hidden-executable",
                severity=Severity.HIGH,
                title="t",
                layer_index=0,
                path="/usr/bin/.x",
                sha256="d" * 64,
            )
        )
        return report

    def new_run(in_case) -> ScanRun:
        uploaded = upload_file(small_image.path)
        uploaded.sha256 = "e" * 64
        lead = in_case.lead
        return ScanRun.objects.get(evidence=receive_evidence(case=in_case, uploaded=uploaded, user=lead))

    store_report(run, finding_report())
    Finding.objects.filter(scan=run).update(
        status=TriageStatus.FALSE_POSITIVE, triage_reason="vendor tool", triaged_by=alice, assignee=alice
    )
    again = new_run(case)
    store_report(again, finding_report())
    carried = Finding.objects.get(scan=again)
    assert (carried.status, carried.triage_reason, carried.assignee, carried.triaged_by) == (
        TriageStatus.FALSE_POSITIVE,
        "vendor tool",
        alice,
        alice,
    )

    elsewhere = new_run(Case.open_case(lead=mallory, title="another incident"))
    store_report(elsewhere, finding_report())
    assert Finding.objects.get(scan=elsewhere).status == TriageStatus.OPEN  # decisions never cross cases
