"""Signature artefacts as cosign attaches them, as OCI manifests + blobs (for layouts and registries)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def bundle_referrer(subject: str, subject_size: int, bundle: bytes) -> tuple[bytes, dict[str, bytes]]:
    """cosign 3: an OCI 1.1 artifact manifest (subject = the image) with the bundle as its one layer.
    Returns (manifest bytes, blobs by digest)."""
    empty = b"{}"
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_V03,
            "config": {"mediaType": EMPTY, "digest": digest(empty), "size": len(empty)},
            "layers": [{"mediaType": BUNDLE_V03, "digest": digest(bundle), "size": len(bundle)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
            },
        }
    )
    return manifest, {digest(empty): empty, digest(bundle): bundle}


def referrers_index(referrers: list[bytes]) -> bytes:
    """The referrers tag schema: an index of the referrer manifests (``sha256-<hex>`` tag)."""
    return dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": digest(m), "size": len(m), "artifactType": BUNDLE_V03}
                for m in referrers
            ],
        }
    )


def legacy_signature(payload: bytes, annotations: dict) -> tuple[bytes, dict[str, bytes]]:
    """cosign 2: the ``sha256-<hex>.sig`` manifest, one simple-signing layer carrying the annotations."""
    config = dumps(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest(payload)]},
        }
    )
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": SIMPLESIGNING,
                    "digest": digest(payload),
                    "size": len(payload),
                    "annotations": annotations,
                }
            ],
        }
    )
    return manifest, {digest(config): config, digest(payload): payload}


def add_to_layout(
    layout: Path, manifest: bytes, blobs: dict[str, bytes], *, ref_name: str = "", artifact_type: str = ""
) -> None:
    """Store a manifest and its blobs in an OCI layout directory and list it in index.json."""
    blob_dir = Path(layout) / "blobs" / "sha256"
    for d, data in {**blobs, digest(manifest): manifest}.items():
        (blob_dir / d.split(":", 1)[1]).write_bytes(data)
    index_path = Path(layout) / "index.json"
    index = json.loads(index_path.read_text())
    desc: dict = {"mediaType": OCI_MANIFEST, "digest": digest(manifest), "size": len(manifest)}
    if artifact_type:
        desc["artifactType"] = artifact_type
    if ref_name:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    index["manifests"].append(desc)
    index_path.write_text(json.dumps(index))
