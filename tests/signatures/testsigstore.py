"""A private Sigstore, made here with ``cryptography`` for offline tests: nothing fetched, nothing copied.

    ca = TestSigstore()          # P-384 root + intermediate (Fulcio), P-256 CT log and Rekor keys
    ca.trusted_root()            # a trustedroot+json;version=0.1 document listing them
    ca.sign_bundle(manifest_digest, identity="dev@example.com", issuer="https://issuer.example")
    ca.sign_legacy(manifest_digest, ...)  # cosign simple-signing payload + annotations (SET, cert, chain)

Leaf certificates follow Fulcio's profile as sigstore-python 4.5 checks it: empty subject, critical SAN,
critical key usage digitalSignature, EKU codeSigning, AKI and SKI, the OIDC issuer in both the v1
extension (raw bytes) and the v2 one (DER UTF8String), and exactly one embedded precertificate SCT signed
by the CT log key over the precertificate TBS. Log entries get an RFC 6962 Merkle inclusion proof in a
small tree, a signed checkpoint and a SET (the Rekor key's signature over the RFC 8785 canonical entry).
Every test fault (``fault=...``) is applied while signing, so what breaks is exactly one thing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OIDC_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO = "application/vnd.in-toto+json"
COSIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
REKOR_ORIGIN = "lowerdir-test-rekor - 4242"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key) -> bytes:
    return hashlib.sha256(spki(key)).digest()


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def der_octet_string(data: bytes) -> bytes:
    return b"\x04" + _der_len(len(data)) + data


def der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_len(len(raw)) + raw


# -- RFC 6962 Merkle tree ---------------------------------------------------------------------------------
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return audit_path(m, leaves[:k]) + [tree_root(leaves[k:])]
    return audit_path(m - k, leaves[k:]) + [tree_root(leaves[:k])]


@dataclass
class Signed:
    """A signature as cosign would attach it."""

    bundle: bytes = b""  # Sigstore bundle JSON (bundle path)
    payload: bytes = b""  # simple-signing payload (legacy path)
    annotations: dict | None = None  # the signature layer's annotations (legacy path)
    cert: x509.Certificate | None = None
    log_index: int = 0


class TestSigstore:
    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "lowerdir-test") -> None:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.now = now
        self.sign_time = now - dt.timedelta(hours=1)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.inter_key = ec.generate_private_key(ec.SECP384R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        start, end = now - dt.timedelta(days=30), now + dt.timedelta(days=365)
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-root"),
            ]
        )
        inter_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-intermediate"),
            ]
        )
        ski_root = x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key())
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(ski_root, critical=False)
            .sign(self.root_key, hashes.SHA384())
        )
        self.intermediate = (
            x509.CertificateBuilder()
            .subject_name(inter_name)
            .issuer_name(root_name)
            .public_key(self.inter_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.inter_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski_root), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.valid_start = start
        self._counter = 0

    # -- the trusted root -----------------------------------------------------------------------------
    def trusted_root(self) -> dict:
        start = self.valid_start.isoformat().replace("+00:00", "Z")

        def tlog(url: str, key) -> dict:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(spki(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": b64(key_id(key.public_key()))},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [tlog("https://rekor.invalid", self.rekor_key)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "lowerdir-test", "commonName": "lowerdir-test-intermediate"},
                    "uri": "https://fulcio.invalid",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": b64(self.intermediate.public_bytes(serialization.Encoding.DER))},
                            {"rawBytes": b64(self.root.public_bytes(serialization.Encoding.DER))},
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [tlog("https://ctfe.invalid", self.ct_key)],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path) -> str:
        with open(path, "w") as fh:
            json.dump(self.trusted_root(), fh)
        return str(path)

    # -- Fulcio ---------------------------------------------------------------------------------------
    def leaf(
        self, identity: str, issuer: str, *, ct_key=None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A Fulcio-style certificate for ``identity``, valid 10 minutes around the signing time, with one
        embedded SCT (signed by ``ct_key``, the trusted CT log unless a test says otherwise)."""
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.UniformResourceIdentifier(identity) if "://" in identity else x509.RFC822Name(identity)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.sign_time - dt.timedelta(minutes=1))
            .not_valid_after(self.sign_time + dt.timedelta(minutes=9))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(OIDC_V1, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(OIDC_V2, der_utf8(issuer)), critical=False)
        )
        precert = builder.sign(self.inter_key, hashes.SHA384())
        sct = self._sct(precert.tbs_certificate_bytes, ct_key or self.ct_key)
        sct_list = struct.pack("!H", len(sct)) + sct
        ext_value = der_octet_string(struct.pack("!H", len(sct_list)) + sct_list)
        cert = builder.add_extension(x509.UnrecognizedExtension(SCT_OID, ext_value), critical=False).sign(
            self.inter_key, hashes.SHA384()
        )
        assert cert.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return key, cert

    def _sct(self, tbs: bytes, ct_key) -> bytes:
        """An RFC 6962 v1 SCT for a precertificate entry (issuer key hash + TBS)."""
        timestamp = int(self.sign_time.timestamp()) * 1000
        issuer_key_hash = key_id(self.inter_key.public_key())
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + issuer_key_hash
            + struct.pack("!I", len(tbs))[1:]
            + tbs
            + struct.pack("!H", 0)
        )
        signature = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", 0)
            + key_id(ct_key.public_key())
            + struct.pack("!QH", timestamp, 0)
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )

    # -- Rekor ----------------------------------------------------------------------------------------
    def log_entry(self, body: bytes, *, fault: str = "") -> dict:
        """A transparency log entry (protobuf-JSON, as in a bundle) for the canonical ``body``."""
        self._counter += 1
        index, size = 5, 8
        others = [leaf_hash(f"other entry {self._counter}-{i}".encode()) for i in range(size)]
        leaves = others[:index] + [leaf_hash(body)] + others[index + 1 :]
        root = tree_root(leaves)
        proof = audit_path(index, leaves)
        if fault == "short-proof":
            proof = proof[:-1]
        integrated = int(self.sign_time.timestamp())
        log_id = key_id(self.rekor_key.public_key())
        note = f"{REKOR_ORIGIN}\n{size}\n{b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = note + "\n" + f"\u2014 lowerdir-test-rekor {b64(log_id[:4] + note_sig)}\n"
        set_sig = self.set_signature(body, integrated, index, log_id)
        if fault == "corrupt-set":
            set_sig = self._corrupt(set_sig)
        return {
            "logIndex": str(index),
            "logId": {"keyId": b64(log_id)},
            "kindVersion": {"kind": json.loads(body)["kind"], "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": b64(set_sig)},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": b64(root),
                "treeSize": str(size),
                "hashes": [b64(h) for h in proof],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": b64(body),
        }

    def set_signature(self, body: bytes, integrated: int, index: int, log_id: bytes) -> bytes:
        payload = rfc8785.dumps(
            {"body": b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": index}
        )
        return self.rekor_key.sign(payload, ec.ECDSA(hashes.SHA256()))

    @staticmethod
    def _corrupt(signature: bytes) -> bytes:
        """Same length and DER shape, one bit of r flipped: a well-formed signature that does not verify."""
        raw = bytearray(signature)
        raw[8] ^= 0x01
        return bytes(raw)

    # -- cosign 3: a Sigstore bundle with a DSSE envelope -----------------------------------------------
    def sign_bundle(
        self,
        digest: str,
        *,
        identity: str = "dev@example.com",
        issuer: str = "https://issuer.example",
        name: str = "registry.example/team/app",
        fault: str = "",
    ) -> Signed:
        """Sign ``digest`` like ``cosign sign`` (v3, new bundle format). Faults: short-proof, corrupt-set,
        unknown-ct, tampered-payload, predicate."""
        key, cert = self.leaf(
            identity,
            issuer,
            ct_key=ec.generate_private_key(ec.SECP256R1()) if fault == "unknown-ct" else None,
        )
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicateType": "https://example.invalid/other" if fault == "predicate" else COSIGN_PREDICATE,
            "predicate": {},
        }
        payload = json.dumps(statement, separators=(",", ":")).encode()
        pae = f"DSSEv1 {len(INTOTO)} {INTOTO} {len(payload)} ".encode() + payload
        signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
        envelope = {"payload": b64(payload), "payloadType": INTOTO, "signatures": [{"sig": b64(signature)}]}
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [{"signature": b64(signature), "verifier": b64(cert_pem)}],
                },
            }
        )
        entry = self.log_entry(body, fault=fault)
        if fault == "tampered-payload":
            tampered = payload.replace(b'"predicate":{}', b'"predicate":{"x":1}')
            envelope["payload"] = b64(tampered)
        bundle = {
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [entry],
            },
            "dsseEnvelope": envelope,
        }
        return Signed(bundle=json.dumps(bundle).encode(), cert=cert, log_index=int(entry["logIndex"]))

    # -- cosign 2: legacy simple signing ----------------------------------------------------------------
    @staticmethod
    def payload(digest: str, name: str = "registry.example/team/app") -> bytes:
        return json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": name},
                    "image": {"docker-manifest-digest": digest},
                    "type": "cosign container image signature",
                },
                "optional": None,
            },
            separators=(",", ":"),
        ).encode()

    def _rekor_bundle(self, payload: bytes, signature: bytes, verifier_pem: bytes, fault: str) -> str:
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
                    "signature": {"content": b64(signature), "publicKey": {"content": b64(verifier_pem)}},
                },
            }
        )
        integrated = int(self.sign_time.timestamp())
        log_id = key_id(self.rekor_key.public_key())
        set_sig = self.set_signature(body, integrated, 1234, log_id)
        if fault == "corrupt-set":
            set_sig = self._corrupt(set_sig)
        return json.dumps(
            {
                "SignedEntryTimestamp": b64(set_sig),
                "Payload": {
                    "body": b64(body),
                    "integratedTime": integrated,
                    "logIndex": 1234,
                    "logID": log_id.hex(),
                },
            }
        )

    def sign_legacy(
        self,
        digest: str,
        *,
        identity: str = "dev@example.com",
        issuer: str = "https://issuer.example",
        fault: str = "",
    ) -> Signed:
        """Keyless, like ``cosign sign`` before v3 (``.sig`` tag). Faults: corrupt-set, unknown-ct,
        tampered-payload, no-set, other-entry."""
        key, cert = self.leaf(
            identity,
            issuer,
            ct_key=ec.generate_private_key(ec.SECP256R1()) if fault == "unknown-ct" else None,
        )
        payload = self.payload(digest)
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        logged_sig = key.sign(payload, ec.ECDSA(hashes.SHA256())) if fault == "other-entry" else signature
        annotations = {
            "dev.cosignproject.cosign/signature": b64(signature),
            "dev.sigstore.cosign/certificate": cert_pem.decode(),
            "dev.sigstore.cosign/chain": (
                self.intermediate.public_bytes(serialization.Encoding.PEM)
                + self.root.public_bytes(serialization.Encoding.PEM)
            ).decode(),
        }
        if fault != "no-set":
            annotations["dev.sigstore.cosign/bundle"] = self._rekor_bundle(
                payload, logged_sig, cert_pem, fault
            )
        if fault == "tampered-payload":
            payload = payload.replace(b'"optional":null', b'"optional":{"x":"1"}')
        return Signed(payload=payload, annotations=annotations, cert=cert, log_index=1234)

    def sign_with_key(
        self, digest: str, key: ec.EllipticCurvePrivateKey, *, tlog: bool = True, fault: str = ""
    ) -> Signed:
        """Key-based, like ``cosign sign --key``. Faults: tampered-payload, corrupt-set."""
        payload = self.payload(digest)
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        annotations = {"dev.cosignproject.cosign/signature": b64(signature)}
        if tlog:
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            annotations["dev.sigstore.cosign/bundle"] = self._rekor_bundle(payload, signature, pem, fault)
        if fault == "tampered-payload":
            payload = payload.replace(b'"optional":null', b'"optional":{"x":"1"}')
        return Signed(payload=payload, annotations=annotations, log_index=1234 if tlog else 0)


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
