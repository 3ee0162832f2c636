"""Signature findings from a scan: artefacts found in an OCI layout, in an archive, or in a bundle file."""

from __future__ import annotations

import json
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from scanner.engine import ScanOptions, SignaturePolicy, scan
from scanner.engine.model import Severity
from tests.imagefactory import build_image

from .artefacts import BUNDLE_V03, add_to_layout, bundle_referrer, legacy_signature, referrers_index
from .testsigstore import public_pem

IDENTITY, ISSUER = "release@example.com", "https://issuer.example"


@pytest.fixture
def image(tmp_path):
    return build_image(tmp_path / "layout", [[("etc/motd", b"hello\n")]], fmt="oci", repo_tags=["app:1"])


def manifest_size(image) -> int:
    return (image.path / "blobs" / "sha256" / image.manifest_digest.split(":", 1)[1]).stat().st_size


def run(source, policy) -> list:
    report = scan(str(source), options=ScanOptions(signatures=policy))
    assert len(report.images) == 1  # signature artefacts are never scanned as images
    return [f for f in report.images[0].findings if f.rule_id.startswith("signature.")]


def policy_for(trusted_root, **kw) -> SignaturePolicy:
    return SignaturePolicy(**{"identity": IDENTITY, "issuer": ISSUER, "trusted_root": trusted_root, **kw})


def test_bundle_referrer_in_the_layout_is_verified(ca, image, trusted_root) -> None:
    signed = ca.sign_bundle(image.manifest_digest, identity=IDENTITY, issuer=ISSUER)
    manifest, blobs = bundle_referrer(image.manifest_digest, manifest_size(image), signed.bundle)
    add_to_layout(image.path, manifest, blobs, artifact_type=BUNDLE_V03)
    [finding] = run(image.path, policy_for(trusted_root))
    assert (finding.rule_id, finding.severity) == ("signature.verified", Severity.INFO)
    assert IDENTITY in finding.detail and ISSUER in finding.detail and "Rekor log index 5" in finding.detail
    assert "logged at" in finding.detail


def test_referrers_tag_schema_in_an_archive(ca, image, trusted_root, tmp_path) -> None:
    """The fallback tag sha256-<hex> (an index of referrers), in an oci-archive (tar)."""
    signed = ca.sign_bundle(image.manifest_digest, identity=IDENTITY, issuer=ISSUER)
    manifest, blobs = bundle_referrer(image.manifest_digest, manifest_size(image), signed.bundle)
    index = referrers_index([manifest])
    hexd = image.manifest_digest.split(":", 1)[1]
    add_to_layout(image.path, manifest, blobs)
    idx = json.loads((image.path / "index.json").read_text())
    idx["manifests"].pop()  # listed only through the referrers index
    (image.path / "index.json").write_text(json.dumps(idx))
    from .artefacts import digest

    (image.path / "blobs" / "sha256" / digest(index).split(":", 1)[1]).write_bytes(index)
    idx["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest(index),
            "size": len(index),
            "annotations": {"org.opencontainers.image.ref.name": f"sha256-{hexd}"},
        }
    )
    (image.path / "index.json").write_text(json.dumps(idx))
    archive = tmp_path / "signed.tar"
    shutil.make_archive(str(archive.with_suffix("")), "tar", image.path)
    [finding] = run(f"oci-archive:{archive}", policy_for(trusted_root))
    assert finding.rule_id == "signature.verified"


def test_legacy_sig_tag_keyless_and_key_based(ca, image, trusted_root) -> None:
    hexd = image.manifest_digest.split(":", 1)[1]
    keyless = ca.sign_legacy(image.manifest_digest, identity=IDENTITY, issuer=ISSUER)
    manifest, blobs = legacy_signature(keyless.payload, keyless.annotations)
    add_to_layout(image.path, manifest, blobs, ref_name=f"sha256-{hexd}.sig")
    [finding] = run(image.path, policy_for(trusted_root))
    assert finding.rule_id == "signature.verified" and "cosign legacy keyless" in finding.detail

    key = ec.generate_private_key(ec.SECP256R1())
    keyed = ca.sign_with_key(image.manifest_digest, key)
    manifest, blobs = legacy_signature(keyed.payload, keyed.annotations)
    add_to_layout(image.path, manifest, blobs, ref_name=f"sha256-{hexd}.sig")
    findings = run(image.path, policy_for(trusted_root, public_keys=[public_pem(key)]))
    assert sorted(f.rule_id for f in findings) == ["signature.verified", "signature.verified"]
    assert any("key sha256:" in f.detail for f in findings)


def test_invalid_signature_is_critical_with_the_reason(ca, image, trusted_root) -> None:
    signed = ca.sign_bundle(image.manifest_digest, identity="mallory@example.com", issuer=ISSUER)
    manifest, blobs = bundle_referrer(image.manifest_digest, manifest_size(image), signed.bundle)
    add_to_layout(image.path, manifest, blobs, artifact_type=BUNDLE_V03)
    [finding] = run(image.path, policy_for(trusted_root))
    assert (finding.rule_id, finding.severity) == ("signature.invalid", Severity.CRITICAL)
    assert "SANs do not match release@example.com" in finding.detail


def test_bundle_file_next_to_the_image(ca, image, trusted_root, tmp_path) -> None:
    path = tmp_path / "app.sigstore.json"
    path.write_bytes(ca.sign_bundle(image.manifest_digest, identity=IDENTITY, issuer=ISSUER).bundle)
    [finding] = run(image.path, policy_for(trusted_root, bundle_files=[str(path)]))
    assert finding.rule_id == "signature.verified" and "bundle file app.sigstore.json" in finding.detail
    other = tmp_path / "other.sigstore.json"
    other.write_bytes(ca.sign_bundle("sha256:" + "0" * 64, identity=IDENTITY, issuer=ISSUER).bundle)
    [finding] = run(image.path, policy_for(trusted_root, bundle_files=[str(other)]))
    assert finding.rule_id == "signature.invalid" and "not this image" in finding.detail


@pytest.mark.parametrize(("require", "severity"), [(False, Severity.LOW), (True, Severity.HIGH)])
def test_missing_signature(image, trusted_root, require, severity) -> None:
    [finding] = run(image.path, policy_for(trusted_root, require=require))
    assert (finding.rule_id, finding.severity) == ("signature.missing", severity)
    assert image.manifest_digest in finding.detail


def test_a_forged_index_annotation_does_not_borrow_another_images_signature(ca, image, trusted_root) -> None:
    """Claiming (in index.json) that the image was pulled through a signed index proves nothing unless
    that index really lists the image."""
    signed_other = "sha256:" + "1" * 64
    idx = json.loads((image.path / "index.json").read_text())
    idx["annotations"] = {"dev.lowerdir.pull.digest": signed_other}
    (image.path / "index.json").write_text(json.dumps(idx))
    bundle = ca.sign_bundle(signed_other, identity=IDENTITY, issuer=ISSUER).bundle
    manifest, blobs = bundle_referrer(signed_other, 100, bundle)
    add_to_layout(image.path, manifest, blobs, artifact_type=BUNDLE_V03)
    findings = run(image.path, policy_for(trusted_root))
    assert [f.rule_id for f in findings] == ["signature.invalid"]
    assert "not this image" in findings[0].detail


def test_no_signature_check_unless_asked(image) -> None:
    report = scan(str(image.path))
    assert not [f for f in report.images[0].findings if f.rule_id.startswith("signature.")]
