"""Signatures fetched from the registry (referrers tag schema and legacy .sig tag) and verified offline."""

from __future__ import annotations

import pytest

from scanner.engine import ScanOptions, SignaturePolicy, scan
from scanner.engine.registry import NetPolicy, pull
from tests.imagefactory import build_image
from tests.signatures.artefacts import (
    OCI_INDEX,
    OCI_MANIFEST,
    bundle_referrer,
    legacy_signature,
    referrers_index,
)
from tests.signatures.testsigstore import TestSigstore

IDENTITY, ISSUER = "release@example.com", "https://issuer.example"


def push_artefact(registry, repo: str, ref: str, manifest: bytes, blobs: dict[str, bytes]) -> None:
    for data in blobs.values():
        registry.put_blob(repo, data)
    registry.put_manifest(repo, ref, manifest, OCI_MANIFEST)


@pytest.fixture(scope="module")
def ca():
    return TestSigstore("lowerdir-registry-test")


def test_signatures_are_pulled_into_the_archive_and_verified(registry, ca, tmp_path) -> None:
    image = build_image(tmp_path / "s", [[("etc/motd", b"signed\n")]], fmt="oci", repo_tags=["1"])
    registry.skopeo_push(image.path, "team/signed:1", tag="1")
    digest = image.manifest_digest
    hexd = digest.split(":", 1)[1]
    size = (image.path / "blobs" / "sha256" / hexd).stat().st_size
    # cosign 3 on a registry without the referrers API: the referrer, then the sha256-<hex> index tag
    bundle = ca.sign_bundle(digest, identity=IDENTITY, issuer=ISSUER).bundle
    manifest, blobs = bundle_referrer(digest, size, bundle)
    push_artefact(
        registry,
        "team/signed",
        "sha256:" + __import__("hashlib").sha256(manifest).hexdigest(),
        manifest,
        blobs,
    )
    registry.put_manifest("team/signed", f"sha256-{hexd}", referrers_index([manifest]), OCI_INDEX)
    # cosign 2: the .sig tag
    legacy = ca.sign_legacy(digest, identity=IDENTITY, issuer=ISSUER)
    manifest, blobs = legacy_signature(legacy.payload, legacy.annotations)
    push_artefact(registry, "team/signed", f"sha256-{hexd}.sig", manifest, blobs)

    result = pull(
        f"{registry.host}/team/signed:1",
        tmp_path / "signed.tar",
        policy=NetPolicy.from_lists(insecure=[registry.host]),
    )
    assert sorted(a["kind"] for a in result.signature_artifacts) == ["cosign-legacy", "sigstore-bundle"]
    trusted_root = ca.write_trusted_root(tmp_path / "trusted_root.json")
    policy = SignaturePolicy(identity=IDENTITY, issuer=ISSUER, trusted_root=trusted_root, require=True)
    [scanned] = scan(str(tmp_path / "signed.tar"), options=ScanOptions(signatures=policy)).images
    found = sorted(
        (f.rule_id, f.detail.split(" (")[0]) for f in scanned.findings if f.rule_id.startswith("sig")
    )
    assert found == [
        ("signature.verified", "cosign legacy keyless"),
        ("signature.verified", "sigstore bundle"),
    ]

    wrong = SignaturePolicy(identity="someone@else.example", trusted_root=trusted_root, require=True)
    [scanned] = scan(str(tmp_path / "signed.tar"), options=ScanOptions(signatures=wrong)).images
    assert {f.rule_id for f in scanned.findings if f.rule_id.startswith("sig")} == {"signature.invalid"}


def test_unsigned_image_pulled_with_signatures_required(registry, tmp_path) -> None:
    image = build_image(tmp_path / "u", [[("etc/motd", b"unsigned\n")]], fmt="oci", repo_tags=["1"])
    registry.skopeo_push(image.path, "team/unsigned:1", tag="1")
    result = pull(
        f"{registry.host}/team/unsigned:1",
        tmp_path / "u.tar",
        policy=NetPolicy.from_lists(insecure=[registry.host]),
    )
    assert result.signature_artifacts == []
    [scanned] = scan(
        str(tmp_path / "u.tar"), options=ScanOptions(signatures=SignaturePolicy(require=True))
    ).images
    [missing] = [f for f in scanned.findings if f.rule_id.startswith("signature.")]
    assert (missing.rule_id, missing.severity) == ("signature.missing", "high")
