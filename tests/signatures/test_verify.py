"""Signature verification against a private test Sigstore, offline: every rejection has a clear reason."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from scanner.engine.signatures import SignaturePolicy, load_trust
from scanner.engine.signatures.verify import verify_bundle, verify_legacy

from .testsigstore import public_pem

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
IDENTITY, ISSUER = "release@example.com", "https://issuer.example"


@pytest.fixture
def policy(trusted_root) -> SignaturePolicy:
    return SignaturePolicy(identity=IDENTITY, issuer=ISSUER, trusted_root=trusted_root)


@pytest.fixture
def trust(trusted_root):
    return load_trust(trusted_root)


def bundle(ca, **kw):
    return ca.sign_bundle(
        DIGEST, identity=kw.pop("identity", IDENTITY), issuer=kw.pop("issuer", ISSUER), **kw
    )


# -- Sigstore bundles (cosign 3) -------------------------------------------------------------------------
def test_valid_bundle_verifies(ca, policy, trust) -> None:
    signed = bundle(ca)
    out = verify_bundle(signed.bundle, {DIGEST}, policy, trust)
    assert out.status == "verified", out.reason
    assert (out.identity, out.issuer, out.subject, out.log_index) == (IDENTITY, ISSUER, DIGEST, 5)
    assert out.integrated_time.endswith("Z")


def test_bundle_for_an_index_digest_counts_for_its_manifest(ca, policy, trust) -> None:
    signed = ca.sign_bundle(OTHER, identity=IDENTITY, issuer=ISSUER)
    assert verify_bundle(signed.bundle, {DIGEST, OTHER}, policy, trust).status == "verified"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"identity": "mallory@example.com"}, "SANs do not match release@example.com"),
        (
            {"identity": "https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main"},
            "SANs do not match",
        ),
        ({"issuer": "https://evil-issuer.example"}, "OIDCIssuer does not match"),
        ({"fault": "short-proof"}, "inclusion proof has wrong size"),
        ({"fault": "corrupt-set"}, "SET: invalid inclusion promise"),
        ({"fault": "unknown-ct"}, "failed to verify SCT on signing certificate"),
        ({"fault": "tampered-payload"}, "DSSE: invalid signature"),
        ({"fault": "predicate"}, "not https://sigstore.dev/cosign/sign/v1"),
    ],
)
def test_bad_bundles_are_rejected_with_a_reason(ca, policy, trust, change, reason) -> None:
    out = verify_bundle(bundle(ca, **change).bundle, {DIGEST}, policy, trust)
    assert out.status == "invalid"
    assert reason in out.reason, out.reason


def test_bundle_for_another_image_is_rejected(ca, policy, trust) -> None:
    signed = ca.sign_bundle(OTHER, identity=IDENTITY, issuer=ISSUER)
    out = verify_bundle(signed.bundle, {DIGEST}, policy, trust)
    assert out.status == "invalid"
    assert out.reason == f"the signature is for {OTHER}, not this image ({DIGEST})"


def test_bundle_from_an_untrusted_sigstore_is_rejected(other_ca, policy, trust) -> None:
    out = verify_bundle(bundle(other_ca).bundle, {DIGEST}, policy, trust)
    assert out.status == "invalid"
    assert "certificate chain" in out.reason  # sigstore: failed to build timestamp certificate chain


def test_malformed_bundles_are_invalid_not_crashes(ca, policy, trust) -> None:
    good = json.loads(bundle(ca).bundle)
    for raw in (
        b"not json",
        b"{}",
        json.dumps({**good, "mediaType": "x"}).encode(),
        json.dumps(
            {**good, "dsseEnvelope": {"payload": "!!", "payloadType": "x", "signatures": []}}
        ).encode(),
    ):
        out = verify_bundle(raw, {DIGEST}, policy, trust)
        assert out.status == "invalid" and out.reason


def test_without_an_expected_identity_a_valid_bundle_is_only_unverifiable(ca, trusted_root, trust) -> None:
    out = verify_bundle(bundle(ca).bundle, {DIGEST}, SignaturePolicy(trusted_root=trusted_root), trust)
    assert out.status == "unverifiable"
    assert "no expected signer is configured" in out.reason
    assert out.identity == IDENTITY  # recorded, for the investigator


# -- legacy cosign, keyless ------------------------------------------------------------------------------
def legacy(ca, digest=DIGEST, **kw):
    return ca.sign_legacy(
        digest, identity=kw.pop("identity", IDENTITY), issuer=kw.pop("issuer", ISSUER), **kw
    )


def check(signed, policy, trust, subjects=frozenset({DIGEST})):
    return verify_legacy(signed.payload, signed.annotations, set(subjects), policy, lambda: trust)


def test_valid_legacy_keyless_signature_verifies(ca, policy, trust) -> None:
    out = check(legacy(ca), policy, trust)
    assert out.status == "verified", out.reason
    assert (out.kind, out.identity, out.issuer, out.log_index) == (
        "cosign legacy keyless",
        IDENTITY,
        ISSUER,
        1234,
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"identity": "mallory@example.com"}, "SANs do not match release@example.com"),
        ({"issuer": "https://evil-issuer.example"}, "OIDCIssuer does not match"),
        ({"fault": "corrupt-set"}, "SET: invalid inclusion promise"),
        ({"fault": "unknown-ct"}, "failed to verify SCT on signing certificate"),
        ({"fault": "tampered-payload"}, "does not verify with the certificate's key"),
        ({"fault": "no-set"}, "must be in the transparency log"),
        ({"fault": "other-entry"}, "the Rekor entry holds another signature"),
    ],
)
def test_bad_legacy_keyless_signatures_are_rejected(ca, policy, trust, change, reason) -> None:
    out = check(legacy(ca, **change), policy, trust)
    assert out.status == "invalid"
    assert reason in out.reason, out.reason


def test_legacy_signature_for_another_image_is_rejected(ca, policy, trust) -> None:
    out = check(legacy(ca, OTHER), policy, trust)
    assert out.status == "invalid" and out.reason.startswith(f"the signature is for {OTHER}, not this image")


def test_legacy_signature_from_an_untrusted_sigstore_is_rejected(other_ca, policy, trust) -> None:
    out = check(legacy(other_ca), policy, trust)
    assert out.status == "invalid"
    assert "SET: invalid inclusion promise" in out.reason  # its Rekor key is not trusted either


def test_legacy_cert_from_an_untrusted_ca_with_a_trusted_set_is_rejected(ca, other_ca, policy, trust) -> None:
    """An attacker's own CA cannot ride on a genuine log entry: the chain check catches it."""
    signed = legacy(other_ca)
    # re-sign the SET with the trusted Rekor key, as if the real log had logged the attacker's entry
    annotations = dict(signed.annotations)
    doc = json.loads(annotations["dev.sigstore.cosign/bundle"])
    import base64

    from .testsigstore import key_id

    log_id = key_id(ca.rekor_key.public_key())
    body = base64.b64decode(doc["Payload"]["body"])
    doc["Payload"]["logID"] = log_id.hex()
    doc["SignedEntryTimestamp"] = base64.b64encode(
        ca.set_signature(body, doc["Payload"]["integratedTime"], doc["Payload"]["logIndex"], log_id)
    ).decode()
    annotations["dev.sigstore.cosign/bundle"] = json.dumps(doc)
    signed.annotations = annotations
    out = check(signed, policy, trust)
    assert out.status == "invalid" and "does not lead to the trusted Fulcio CA" in out.reason, out.reason


# -- legacy cosign, key-based ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def signing_key():
    return ec.generate_private_key(ec.SECP256R1())


def test_key_based_signature_verifies(ca, signing_key, trusted_root, trust) -> None:
    policy = SignaturePolicy(public_keys=[public_pem(signing_key)], trusted_root=trusted_root)
    out = check(ca.sign_with_key(DIGEST, signing_key), policy, trust)
    assert out.status == "verified", out.reason
    assert out.key.startswith("sha256:") and out.log_index == 1234
    out = check(ca.sign_with_key(DIGEST, signing_key, tlog=False), policy, trust)
    assert out.status == "verified" and out.log_index is None


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("wrong-key", "does not verify with the configured public key"),
        ("tampered-payload", "does not verify with the configured public key"),
        ("corrupt-set", "SET: invalid inclusion promise"),
        ("other-image", "not this image"),
    ],
)
def test_bad_key_based_signatures_are_rejected(ca, signing_key, trusted_root, trust, fault, reason) -> None:
    key = ec.generate_private_key(ec.SECP256R1()) if fault == "wrong-key" else signing_key
    signed = ca.sign_with_key(
        OTHER if fault == "other-image" else DIGEST,
        key,
        fault=fault if fault in ("tampered-payload", "corrupt-set") else "",
    )
    policy = SignaturePolicy(public_keys=[public_pem(signing_key)], trusted_root=trusted_root)
    out = check(signed, policy, trust)
    assert out.status == "invalid" and reason in out.reason, out.reason


def test_key_based_signature_without_a_configured_key_is_unverifiable(
    ca, signing_key, trusted_root, trust
) -> None:
    out = check(ca.sign_with_key(DIGEST, signing_key), SignaturePolicy(trusted_root=trusted_root), trust)
    assert out.status == "unverifiable" and "no public key is configured" in out.reason


def test_the_network_guard_is_active() -> None:
    import socket

    with pytest.raises(AssertionError, match="attempted during an offline test"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.1)
