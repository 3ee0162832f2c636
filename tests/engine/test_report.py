"""The report contract (DESIGN §4), the table, and progress reporting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from scanner.engine import ScanOptions, scan
from scanner.engine.report import max_severity, render_table, to_dict
from tests.imagefactory import Entry, build_image, compress, layer_tar, tamper

DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["schema", "source", "images", "stats"],
    "properties": {
        "schema": {"const": "lowerdir.scan/v1"},
        "source": {"type": "object", "additionalProperties": False, "required": ["path", "format", "sha256"],
                   "properties": {"path": {"type": "string"},
                                  "format": {"enum": ["docker-archive", "oci-archive", "oci-layout",
                                                      "registry"]},
                                  "sha256": {"type": "string"}}},
        "images": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["manifest_digest", "config_digest", "repo_tags", "platform", "user", "created",
                         "layers", "findings"],
            "properties": {
                "manifest_digest": {"type": "string"}, "config_digest": DIGEST,
                "repo_tags": {"type": "array", "items": {"type": "string"}}, "platform": {"type": "string"},
                "user": {"type": "string"}, "created": {"type": "string"},
                "layers": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["index", "digest", "diff_id", "size", "created_by", "empty_history",
                                 "files_added", "files_modified", "files_deleted"],
                    "properties": {"index": {"type": "integer"}, "digest": DIGEST, "diff_id": DIGEST,
                                   "size": {"type": "integer"}, "created_by": {"type": "string"},
                                   "empty_history": {"type": "array", "items": {"type": "string"}},
                                   "files_added": {"type": "integer"}, "files_modified": {"type": "integer"},
                                   "files_deleted": {"type": "integer"}}}},
                "findings": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["rule_id", "severity", "title", "detail", "layer_index", "layer_digest",
                                 "path", "sha256", "fingerprint"],
                    "properties": {"rule_id": {"type": "string"},
                                   "severity": {"enum": ["critical", "high", "medium", "low", "info"]},
                                   "title": {"type": "string"}, "detail": {"type": "string"},
                                   "layer_index": {"type": ["integer", "null"]},
                                   "layer_digest": {"type": "string"}, "path": {"type": "string"},
                                   "sha256": {"type": "string"}, "fingerprint": {"type": "string"},
                                   # added by the rule pack (issue 4)
                                   "excerpt": {"type": "string"}, "remediation": {"type": "string"},
                                   "hidden_layer_index": {"type": ["integer", "null"]},
                                   "related": {"type": "array", "items": {"type": "string"}},
                                   "suppressed": {"type": "boolean"}, "suppression": {"type": "string"}}}},
            }}},
        "stats": {"type": "object", "additionalProperties": False,
                  "required": ["layers", "files", "bytes_read", "seconds"],
                  "properties": {"layers": {"type": "integer"}, "files": {"type": "integer"},
                                 "bytes_read": {"type": "integer"}, "seconds": {"type": "number"}}},
    },
}


@pytest.fixture
def tampered(tmp_path: Path):
    hostile = Entry("../[bold red]x[/]", b"markup")  # flagged (traversal), so it shows in a finding
    built = build_image(tmp_path / "img", [[("/a", b"1")], [hostile]], fmt="oci", repo_tags=["ex/app:1"])
    tamper(built, built.layer_digests[0], compress(layer_tar([("/a", b"2")]), "gzip"))
    return built


def test_json_matches_the_design_schema(tampered) -> None:
    report = scan(str(tampered.path), options=ScanOptions(hash_source=True))
    doc = to_dict(report)
    jsonschema.validate(doc, SCHEMA)
    json.dumps(doc)  # serialisable as is
    findings = doc["images"][0]["findings"]
    assert findings[0]["severity"] == "critical"  # most severe first
    assert len({f["fingerprint"] for f in findings}) == len(findings)
    assert doc["source"]["sha256"] == ""  # a directory has no single hash
    assert str(max_severity(report)) == "critical"


def test_fingerprints_are_stable_across_runs(tampered) -> None:
    first = [f["fingerprint"] for f in to_dict(scan(str(tampered.path)))["images"][0]["findings"]]
    second = [f["fingerprint"] for f in to_dict(scan(str(tampered.path), options=ScanOptions(jobs=2)))
              ["images"][0]["findings"]]
    assert first == second


def test_tables_print_attacker_strings_as_text(tampered) -> None:
    report = scan(str(tampered.path))
    plain = render_table(report)
    assert "integrity.digest-mismatch" in plain and "UNTRUSTED" in plain and "ex/app:1" in plain
    rich = render_table(report, color=True, width=140)
    assert "[bold red]x[/]" in rich  # markup in a path is shown, not interpreted


def test_progress_is_monotonic_and_complete(tmp_path: Path) -> None:
    layers = [[(f"/f{i}", os.urandom(3 << 20))] for i in range(3)]
    built = build_image(tmp_path / "img.tar", layers, fmt="oci-archive", compression="none")
    for jobs in (1, 2):
        calls: list[tuple[int, int]] = []
        report = scan(str(built.path), options=ScanOptions(jobs=jobs),
                      progress=lambda d, t, _calls=calls: _calls.append((d, t)))
        total = sum(layer.size for layer in report.images[0].layers)
        assert calls and calls[-1] == (total, total)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert all(t == total for _, t in calls)


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", [[("/a", b"1")]], fmt="oci-archive")
    with pytest.raises(ValueError):
        scan(str(built.path), options=ScanOptions(jobs=0))


def test_an_error_in_progress_stops_the_workers(tmp_path: Path) -> None:
    import multiprocessing

    layers = [[(f"/f{i}", os.urandom(8 << 20))] for i in range(4)]
    built = build_image(tmp_path / "img.tar", layers, fmt="oci-archive", compression="none")

    def progress(done: int, total: int) -> None:
        raise KeyboardInterrupt  # what ^C or a Celery time limit looks like to the engine

    with pytest.raises(KeyboardInterrupt):
        scan(str(built.path), options=ScanOptions(jobs=2), progress=progress)
    assert multiprocessing.active_children() == []
