"""Find signature artefacts inside an image source (an OCI layout or archive), without trusting it.

Looked at, from ``index.json``:

- referrer manifests (OCI 1.1 artifacts) whose ``artifactType`` is a Sigstore bundle type: each bundle
  layer is a candidate (this is what ``pull`` writes, and what ``oras copy`` / ``regctl`` write with
  referrers);
- a ``sha256-<hex>`` tag holding the referrers index (the referrers tag schema);
- a ``sha256-<hex>.sig`` tag: a legacy cosign signature manifest, one simple-signing layer per signature.

Which digest a signature is *for* is always taken from the signed content (the statement's subject,
the payload's docker-manifest-digest), never from names or annotations: those only help find it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from ..limits import Limits
from ..model import ScanError
from ..sources import Source, check_digest

BUNDLE_TYPES = {
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
}
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
REF_NAME = "org.opencontainers.image.ref.name"
PULL_DIGEST = "dev.lowerdir.pull.digest"
_TAG = re.compile(r"^sha256-([0-9a-f]{64})(\.sig)?$")
MAX_ARTEFACTS = 64
MAX_LAYERS = 16


@dataclass
class Artefact:
    kind: str  # "bundle" | "legacy"
    digest: str  # the manifest (or file) holding it
    data: bytes  # the bundle JSON, or the simple-signing payload
    annotations: dict = field(default_factory=dict)  # legacy: the layer's annotations
    where: str = ""  # for the finding's detail

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _read(src: Source, digest: object, what: str, limits: Limits) -> bytes | None:
    """A blob, only if it exists and matches its digest (a tampered signature blob is not used)."""
    try:
        alg, hexd = check_digest(digest, what)
        if alg != "sha256" or not src.exists(f"blobs/{alg}/{hexd}"):
            return None
        data = src.read(src.blob(digest, what), what)
    except ScanError:
        return None
    if hashlib.sha256(data).hexdigest() != hexd:
        return None
    return data


def _doc(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _layers(doc: dict) -> list[dict]:
    layers = doc.get("layers")
    return [x for x in layers[:MAX_LAYERS] if isinstance(x, dict)] if isinstance(layers, list) else []


def index_entries(src: Source) -> tuple[dict, list[dict]]:
    try:
        index = _doc(src.read(src.locate("index.json", "index.json"), "index.json")) or {}
    except ScanError:
        return {}, []
    manifests = index.get("manifests")
    return index, [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else []


def find_artefacts(src: Source, limits: Limits) -> list[Artefact]:
    _, entries = index_entries(src)
    out: list[Artefact] = []
    seen: set[str] = set()

    def bundle_manifest(digest: object, where: str) -> None:
        if not isinstance(digest, str) or digest in seen:
            return
        seen.add(digest)
        doc = _doc(_read(src, digest, "signature manifest", limits))
        if doc is None:
            return
        for layer in _layers(doc):
            if layer.get("mediaType") in BUNDLE_TYPES:
                data = _read(src, layer.get("digest"), "signature bundle", limits)
                if data is not None:
                    out.append(Artefact("bundle", digest, data, where=where))

    for desc in entries:
        if len(out) >= MAX_ARTEFACTS:
            break
        ann = desc.get("annotations") if isinstance(desc.get("annotations"), dict) else {}
        match = _TAG.match(str(ann.get(REF_NAME, "")))
        if desc.get("artifactType") in BUNDLE_TYPES:
            bundle_manifest(desc.get("digest"), f"referrer {desc.get('digest')}")
        elif match and match.group(2):
            doc = _doc(_read(src, desc.get("digest"), "legacy signature manifest", limits))
            for layer in _layers(doc or {}):
                if layer.get("mediaType") != SIMPLESIGNING:
                    continue
                payload = _read(src, layer.get("digest"), "simple-signing payload", limits)
                annotations = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
                if payload is not None:
                    out.append(
                        Artefact(
                            "legacy",
                            str(desc.get("digest")),
                            payload,
                            {k: v for k, v in annotations.items() if isinstance(v, str)},
                            where=f"tag {match.group(0)}",
                        )
                    )
        elif match and desc.get("mediaType") in INDEX_TYPES:
            doc = _doc(_read(src, desc.get("digest"), "referrers index", limits)) or {}
            for ref in doc.get("manifests") or []:
                if isinstance(ref, dict) and ref.get("artifactType") in BUNDLE_TYPES:
                    bundle_manifest(ref.get("digest"), f"referrers tag {match.group(0)}")
    return out[:MAX_ARTEFACTS]


def subjects_for(src: Source, manifest_digest: str, limits: Limits) -> set[str]:
    """The digests a signature for this image may name: the manifest's, and those of image indexes in
    the source that really list it (read and hash-checked here: an annotation alone proves nothing)."""
    subjects = {manifest_digest} if manifest_digest else set()
    if not manifest_digest:
        return subjects
    index, entries = index_entries(src)
    candidates = [d.get("digest") for d in entries if d.get("mediaType") in INDEX_TYPES]
    pulled = (
        (index.get("annotations") or {}).get(PULL_DIGEST)
        if isinstance(index.get("annotations"), dict)
        else None
    )
    if pulled:
        candidates.append(pulled)

    def lists(digest: object, depth: int) -> bool:
        if depth > limits.max_index_depth:
            return False
        doc = _doc(_read(src, digest, "image index", limits))
        if doc is None or not isinstance(doc.get("manifests"), list):
            return False
        for entry in doc["manifests"][: limits.max_manifests]:
            if not isinstance(entry, dict):
                continue
            if entry.get("digest") == manifest_digest:
                return True
            if entry.get("mediaType") in INDEX_TYPES and lists(entry.get("digest"), depth + 1):
                return True
        return False

    for digest in candidates:
        if isinstance(digest, str) and digest not in subjects and lists(digest, 1):
            subjects.add(digest)
    return subjects


def claimed_subjects(art: Artefact) -> set[str]:
    """The digests an artefact says it signs, unverified (only to tell which image it belongs to)."""
    try:
        if art.kind == "legacy":
            return {json.loads(art.data)["critical"]["image"]["docker-manifest-digest"]}
        import base64

        envelope = json.loads(art.data).get("dsseEnvelope") or {}
        statement = json.loads(base64.b64decode(envelope.get("payload", "")))
        return {f"sha256:{s['digest']['sha256']}" for s in statement.get("subject") or []}
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()
