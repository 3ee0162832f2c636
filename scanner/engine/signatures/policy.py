"""Who is expected to have signed: identity and OIDC issuer (keyless), or public keys (key-based)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..model import ScanError


@dataclass
class SignaturePolicy:
    identity: str = ""  # expected certificate identity (SAN: e-mail or URI), exact
    issuer: str = ""  # expected OIDC issuer, exact
    public_keys: list[bytes] = field(default_factory=list)  # PEM public keys for key-based signatures
    trusted_root: str = ""  # path to trusted_root.json; "" = sigstore's embedded production root
    require: bool = False  # a missing signature is high (else low)
    bundle_files: list[str] = field(default_factory=list)  # sigstore bundles given next to the image

    @property
    def pinned(self) -> bool:
        return bool(self.identity)

    def keys(self) -> list[tuple[str, object]]:
        """(key id, public key) for each configured PEM key; the key id is the SHA-256 of the SPKI."""
        out = []
        for pem in self.public_keys:
            try:
                key = serialization.load_pem_public_key(pem)
            except ValueError as exc:
                raise ScanError(f"the cosign public key is not a PEM public key: {exc}") from None
            if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
                raise ScanError("the cosign public key is of an unsupported type")
            out.append((key_id(key), key))
        return out


def key_id(key) -> str:
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()
