"""The Sigstore root of trust: the production root embedded in sigstore-python (used offline), or a
``trusted_root.json`` for a private Sigstore deployment."""

from __future__ import annotations

import functools

from ..model import ScanError


class TrustError(ScanError):
    pass


class Trust:
    """A loaded trusted root and a sigstore ``Verifier`` over it."""

    def __init__(self, trusted_root, name: str) -> None:
        from sigstore.verify import Verifier

        self.root = trusted_root
        self.name = name
        self.verifier = Verifier(trusted_root=trusted_root)

    @functools.cached_property
    def fulcio_certs(self) -> list:
        return self.root.get_fulcio_certs()

    @functools.cached_property
    def rekor_keyring(self):
        from sigstore._internal.trust import KeyringPurpose

        return self.root.rekor_keyring(KeyringPurpose.VERIFY)

    @functools.cached_property
    def ct_keyring(self):
        from sigstore._internal.trust import KeyringPurpose

        return self.root.ct_keyring(KeyringPurpose.VERIFY)


@functools.lru_cache(maxsize=8)
def load_trust(path: str = "") -> Trust:
    """``path`` to a trusted_root.json, or "" for sigstore's embedded production root (offline: no TUF
    refresh, nothing fetched)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig, TrustedRoot

    try:
        if path:
            return Trust(TrustedRoot.from_file(path), path)
        return Trust(
            ClientTrustConfig.production(offline=True).trusted_root, "sigstore production (embedded)"
        )
    except (OSError, ValueError, SigstoreError) as exc:
        where = path or "the embedded production root"
        raise TrustError(
            f"cannot load the Sigstore trusted root from {where}: {' '.join(str(exc).split())[:300]}"
        ) from None
