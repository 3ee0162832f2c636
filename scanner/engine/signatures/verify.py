"""Verify one signature artefact: a Sigstore bundle (DSSE over an in-toto statement, cosign 3) or a
legacy cosign simple-signing payload (key-based or keyless with a Rekor SET).

Each function returns an :class:`Outcome`; nothing raises for a bad signature (a bad signature is a
finding, with the reason), only for a broken configuration.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from .policy import SignaturePolicy, key_id
from .trust import Trust

INTOTO = "application/vnd.in-toto+json"
COSIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
COSIGN_TYPE = "cosign container image signature"
OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
CERT_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"


@dataclass
class Outcome:
    status: str  # verified | invalid | unverifiable
    reason: str = ""  # why invalid / unverifiable
    kind: str = ""  # "sigstore bundle" | "cosign legacy keyless" | "cosign legacy key"
    subject: str = ""  # the digest the signature is for
    identity: str = ""
    issuer: str = ""
    key: str = ""  # key id (key-based)
    log_index: int | None = None
    integrated_time: str = ""

    def describe(self) -> str:
        parts = []
        if self.identity:
            parts.append(f"identity {self.identity}")
        if self.issuer:
            parts.append(f"issuer {self.issuer}")
        if self.key:
            parts.append(f"key {self.key}")
        if self.log_index is not None:
            parts.append(f"Rekor log index {self.log_index}")
        if self.integrated_time:
            parts.append(f"logged at {self.integrated_time}")
        return ", ".join(parts)


def _invalid(kind: str, reason: str, **kw) -> Outcome:
    return Outcome("invalid", " ".join(reason.split())[:1000], kind, **kw)


def cert_identity(cert: x509.Certificate) -> tuple[str, str]:
    """(identity, issuer) as Fulcio writes them: the SAN (e-mail, URI or other name) and the OIDC issuer."""
    identity = ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = (
            san.get_values_for_type(x509.RFC822Name)
            + san.get_values_for_type(x509.UniformResourceIdentifier)
            + [o.value.decode("utf-8", "replace") for o in san.get_values_for_type(x509.OtherName)]
        )
        identity = names[0] if names else ""
    except x509.ExtensionNotFound:
        pass
    issuer = ""
    try:
        raw = cert.extensions.get_extension_for_oid(OIDC_ISSUER_V2).value.value  # type: ignore[attr-defined]
        issuer = asn1.decode_der(str, raw)
    except (x509.ExtensionNotFound, ValueError, TypeError):
        try:
            issuer = cert.extensions.get_extension_for_oid(OIDC_ISSUER_V1).value.value.decode()  # type: ignore
        except (x509.ExtensionNotFound, UnicodeDecodeError, AttributeError):
            issuer = ""
    return identity, issuer


class _Observe:
    """A sigstore verification policy used only when no expected identity is configured: it checks
    the configured issuer (if any) and records the identity, and the result is reported as
    ``unverifiable`` (never ``verified``): the signature is cryptographically sound but nobody said who
    should have made it."""

    def __init__(self, issuer: str) -> None:
        from sigstore.verify.policy import OIDCIssuer

        self._issuer = OIDCIssuer(issuer) if issuer else None

    def verify(self, cert: x509.Certificate) -> None:
        if self._issuer:
            self._issuer.verify(cert)


def _sigstore_policy(policy: SignaturePolicy):
    from sigstore.verify.policy import Identity

    if policy.identity:
        return Identity(identity=policy.identity, issuer=policy.issuer or None)
    return _Observe(policy.issuer)


def _unpinned_reason() -> str:
    return (
        "no expected signer is configured (LOWERDIR_SIGNATURE_IDENTITY / --identity): the signature is "
        "cryptographically valid, but anyone can obtain a Sigstore certificate"
    )


# -- Sigstore bundles -------------------------------------------------------------------------------------
def verify_bundle(raw: bytes, subjects: set[str], policy: SignaturePolicy, trust: Trust) -> Outcome:
    """A Sigstore bundle (v0.1-v0.3) whose DSSE envelope carries an in-toto statement for the image."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    kind = "sigstore bundle"
    try:
        bundle = Bundle.from_json(raw)
    except (SigstoreError, ValueError) as exc:
        return _invalid(kind, f"malformed bundle: {str(exc)[:300]}")
    except Exception as exc:  # pydantic and certificate parsing errors: hostile input
        return _invalid(kind, f"malformed bundle: {type(exc).__name__}: {str(exc)[:300]}")
    if bundle._inner.dsse_envelope is None:
        return _invalid(
            kind, "the bundle signs a blob (message signature), not an in-toto statement for an image"
        )
    identity, issuer = cert_identity(bundle.signing_certificate)
    entry = bundle.log_entry._inner
    facts = {
        "identity": identity,
        "issuer": issuer,
        "log_index": entry.log_index,
        "integrated_time": _iso(entry.integrated_time),
    }
    try:
        payload_type, payload = trust.verifier.verify_dsse(bundle, _sigstore_policy(policy))
    except SigstoreError as exc:
        return _invalid(kind, str(exc), **facts)
    except Exception as exc:  # malformed pieces the library did not expect: still a bad signature
        return _invalid(kind, f"{type(exc).__name__}: {str(exc)[:300]}", **facts)
    if payload_type != INTOTO:
        return _invalid(kind, f"DSSE payload type is {payload_type[:100]!r}, not {INTOTO}", **facts)
    try:
        statement = json.loads(payload)
        predicate_type = statement.get("predicateType")
        digests = [
            f"sha256:{s['digest']['sha256']}"
            for s in statement.get("subject") or []
            if isinstance(s, dict) and isinstance(s.get("digest"), dict) and "sha256" in s["digest"]
        ]
    except (ValueError, AttributeError, TypeError):
        return _invalid(kind, "the DSSE payload is not an in-toto statement", **facts)
    if predicate_type != COSIGN_PREDICATE:
        return _invalid(
            kind,
            f"predicate type is {str(predicate_type)[:100]!r}, not {COSIGN_PREDICATE} "
            "(an attestation, not an image signature)",
            **facts,
        )
    hit = [d for d in digests if d in subjects]
    if not hit:
        return _invalid(
            kind,
            f"the signature is for {', '.join(digests) or 'no digest'}, not this image "
            f"({', '.join(sorted(subjects))})",
            **facts,
        )
    outcome = Outcome("verified", "", kind, hit[0], **facts)
    if not policy.pinned:
        outcome.status, outcome.reason = "unverifiable", _unpinned_reason()
    return outcome


def _iso(ts: int | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(int(ts), UTC).isoformat().replace("+00:00", "Z")


# -- legacy cosign simple signing ------------------------------------------------------------------------
def _payload_subject(payload: bytes) -> tuple[str, str]:
    """(manifest digest, docker-reference) from a simple-signing payload, or raise ValueError."""
    doc = json.loads(payload)
    critical = doc["critical"]
    if critical.get("type") != COSIGN_TYPE:
        raise ValueError(f"type is {str(critical.get('type'))[:80]!r}, not {COSIGN_TYPE!r}")
    digest = critical["image"]["docker-manifest-digest"]
    ref = (critical.get("identity") or {}).get("docker-reference", "")
    if not isinstance(digest, str):
        raise ValueError("docker-manifest-digest is not a string")
    return digest, ref if isinstance(ref, str) else ""


def _verify_raw(key, signature: bytes, data: bytes) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    else:
        raise InvalidSignature("unsupported key type")


def _set(bundle_text: str, trust: Trust) -> tuple[dict, int, int, bytes]:
    """Verify a cosign ``dev.sigstore.cosign/bundle`` (Rekor SET); returns (entry body, log index,
    integrated time, log id). Raises ValueError with the reason."""
    import rfc8785
    from sigstore.errors import VerificationError

    try:
        doc = json.loads(bundle_text)
        set_sig = base64.b64decode(doc["SignedEntryTimestamp"], validate=True)
        payload = doc["Payload"]
        body_b64, integrated, log_index, log_id = (
            payload["body"],
            payload["integratedTime"],
            payload["logIndex"],
            payload["logID"],
        )
        if not (
            isinstance(body_b64, str)
            and isinstance(integrated, int)
            and isinstance(log_index, int)
            and isinstance(log_id, str)
        ):
            raise TypeError("wrong field types")
        log_id_bytes = bytes.fromhex(log_id)
        body = json.loads(base64.b64decode(body_b64, validate=True))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"malformed Rekor bundle annotation: {type(exc).__name__}") from None
    canonical = rfc8785.dumps(
        {"body": body_b64, "integratedTime": integrated, "logID": log_id, "logIndex": log_index}
    )
    try:
        trust.rekor_keyring.verify(key_id=log_id_bytes, signature=set_sig, data=canonical)
    except VerificationError as exc:
        raise ValueError(f"SET: invalid inclusion promise: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("the Rekor entry body is not an object")
    return body, log_index, integrated, log_id_bytes


def _check_hashedrekord(
    body: dict, payload: bytes, signature: bytes, verifier_pem: bytes | None, key=None
) -> None:
    """The logged entry must be about this payload, this signature and this certificate (or key)."""
    try:
        if body.get("kind") != "hashedrekord" or body.get("apiVersion") != "0.0.1":
            raise ValueError(f"unsupported Rekor entry {body.get('kind')}/{body.get('apiVersion')}")
        spec = body["spec"]
        data_hash = spec["data"]["hash"]
        logged_sig = base64.b64decode(spec["signature"]["content"], validate=True)
        logged_key = base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
    except (KeyError, TypeError, binascii.Error, AttributeError) as exc:
        raise ValueError(f"malformed Rekor entry body: {type(exc).__name__}") from None
    if (
        data_hash.get("algorithm") != "sha256"
        or data_hash.get("value") != hashlib.sha256(payload).hexdigest()
    ):
        raise ValueError("the Rekor entry is for another payload (payload hash differs)")
    if logged_sig != signature:
        raise ValueError("the Rekor entry holds another signature")
    if verifier_pem is not None:
        try:
            logged_cert = x509.load_pem_x509_certificate(logged_key)
            mine = x509.load_pem_x509_certificate(verifier_pem)
        except ValueError:
            raise ValueError("the Rekor entry's certificate cannot be read") from None
        if logged_cert.public_bytes(serialization.Encoding.DER) != mine.public_bytes(
            serialization.Encoding.DER
        ):
            raise ValueError("the Rekor entry holds another certificate")
    elif key is not None:
        try:
            logged = serialization.load_pem_public_key(logged_key)
        except ValueError:
            raise ValueError("the Rekor entry's public key cannot be read") from None
        if key_id(logged) != key_id(key):
            raise ValueError("the Rekor entry holds another public key")


def _chain_at(cert: x509.Certificate, when: datetime, trust: Trust) -> list[x509.Certificate]:
    """Path validation to the trusted Fulcio CA at ``when`` (as sigstore-python does for bundles)."""
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(trust.fulcio_certs))
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return verifier.verify(cert, []).chain[1:]
    except (VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise ValueError(
            f"certificate chain does not lead to the trusted Fulcio CA at {when:%Y-%m-%dT%H:%M:%SZ}: {exc}"
        ) from None


def verify_legacy(
    payload: bytes, annotations: dict, subjects: set[str], policy: SignaturePolicy, trust_loader
) -> Outcome:
    """A cosign simple-signing signature (``sha256-<hex>.sig`` tag): key-based or keyless.

    ``trust_loader()`` returns the :class:`Trust` (loaded only when a certificate or SET needs it).
    """
    cert_pem = annotations.get(CERT_ANNOTATION) or ""
    kind = "cosign legacy keyless" if cert_pem else "cosign legacy key"
    try:
        digest, _ref = _payload_subject(payload)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _invalid(kind, f"not a cosign simple-signing payload: {exc}")
    if digest not in subjects:
        return _invalid(
            kind, f"the signature is for {digest[:80]}, not this image ({', '.join(sorted(subjects))})"
        )
    try:
        signature = base64.b64decode(annotations.get(SIG_ANNOTATION) or "", validate=True)
    except (binascii.Error, ValueError):
        return _invalid(kind, "the signature annotation is not base64", subject=digest)
    if not signature:
        return _invalid(kind, "no signature annotation", subject=digest)
    bundle_text = annotations.get(BUNDLE_ANNOTATION) or ""
    if cert_pem:
        return _legacy_keyless(
            payload, signature, cert_pem.encode(), bundle_text, digest, policy, trust_loader()
        )
    return _legacy_key(payload, signature, bundle_text, digest, policy, trust_loader)


def _legacy_key(
    payload: bytes, signature: bytes, bundle_text: str, digest: str, policy: SignaturePolicy, trust_loader
) -> Outcome:
    kind = "cosign legacy key"
    keys = policy.keys()
    if not keys:
        return Outcome(
            "unverifiable",
            "a key-based signature, but no public key is configured (LOWERDIR_COSIGN_PUBLIC_KEY / --key)",
            kind,
            digest,
        )
    for kid, key in keys:
        try:
            _verify_raw(key, signature, payload)
        except InvalidSignature:
            continue
        outcome = Outcome("verified", "", kind, digest, key=kid)
        if bundle_text:
            try:
                body, log_index, integrated, _ = _set(bundle_text, trust_loader())
                _check_hashedrekord(body, payload, signature, None, key)
            except ValueError as exc:
                return _invalid(kind, str(exc), subject=digest, key=kid)
            outcome.log_index, outcome.integrated_time = log_index, _iso(integrated)
        return outcome
    return _invalid(
        kind,
        f"the signature does not verify with the configured public key"
        f"{'s' if len(keys) > 1 else ''} ({', '.join(k for k, _ in keys)})",
        subject=digest,
    )


def _legacy_keyless(
    payload: bytes,
    signature: bytes,
    cert_pem: bytes,
    bundle_text: str,
    digest: str,
    policy: SignaturePolicy,
    trust: Trust,
) -> Outcome:
    from sigstore._internal.sct import verify_sct
    from sigstore.errors import VerificationError

    kind = "cosign legacy keyless"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return _invalid(kind, "the certificate annotation is not a PEM certificate", subject=digest)
    identity, issuer = cert_identity(cert)
    facts = {"subject": digest, "identity": identity, "issuer": issuer}
    if not bundle_text:
        return _invalid(
            kind, "no Rekor bundle (SET): a keyless signature must be in the transparency log", **facts
        )
    # 1. The SET: the log's promise that this entry body was logged at this time.
    try:
        body, log_index, integrated, _ = _set(bundle_text, trust)
    except ValueError as exc:
        return _invalid(kind, str(exc), **facts)
    facts.update(log_index=log_index, integrated_time=_iso(integrated))
    when = datetime.fromtimestamp(integrated, UTC)
    try:
        # 2. The certificate chains to the trusted Fulcio CA at the integrated time.
        chain = _chain_at(cert, when, trust)
        # 3. Its embedded SCT is signed by a trusted CT log.
        try:
            verify_sct(cert, chain, trust.ct_keyring)
        except VerificationError as exc:
            raise ValueError(f"failed to verify SCT on signing certificate: {exc}") from None
        # 4. Sigstore's certificate profile and the identity policy.
        try:
            if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
                raise ValueError("key usage is not digital signature")
            if (
                ExtendedKeyUsageOID.CODE_SIGNING
                not in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            ):
                raise ValueError("extended key usage does not contain code signing")
        except x509.ExtensionNotFound as exc:
            raise ValueError(f"the certificate lacks {exc.oid.dotted_string}") from None
        try:
            _sigstore_policy(policy).verify(cert)
        except VerificationError as exc:
            raise ValueError(str(exc)) from None
        # 5. Logged while the short-lived certificate was valid.
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise ValueError("invalid signing cert: expired at the time it was logged")
        # 6. The signature over the payload, with the certificate's key.
        try:
            _verify_raw(cert.public_key(), signature, payload)
        except InvalidSignature:
            raise ValueError(
                "the signature does not verify with the certificate's key (tampered payload or signature)"
            ) from None
        # 7. The logged entry is this payload, signature and certificate.
        _check_hashedrekord(body, payload, signature, cert_pem)
    except ValueError as exc:
        return _invalid(kind, str(exc), **facts)
    outcome = Outcome("verified", "", kind, **facts)
    if not policy.pinned:
        outcome.status, outcome.reason = "unverifiable", _unpinned_reason()
    return outcome
