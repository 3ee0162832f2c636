"""Pull an image by reference into an OCI image layout archive: ordinary evidence for the engine.

What is written (a tar, uncompressed, deterministic member order)::

    oci-layout
    index.json      the pulled image (or the chosen platform's manifest) named by its reference, the
                    signature artefacts found for it, and the pull's provenance as annotations
    blobs/sha256/…  every manifest, config, layer and signature blob, under the digest that named it

Every blob is hashed while it streams. A blob (or manifest) whose content does not match the digest
that named it is kept under the *claimed* name and recorded in ``PullResult.mismatches``: scanning the
archive then reports ``integrity.digest-mismatch`` from the engine's own verification, and the bytes the
registry served stay available as evidence. Sizes are bounded by :class:`~scanner.engine.limits.Limits`
(``max_json_bytes`` for documents, ``max_layer_bytes`` per blob, ``max_layers``, ``max_manifests``) and
``max_total_bytes`` for the whole pull.

For a multi-platform index every platform is recorded (``PullResult.platforms`` and the
``dev.lowerdir.pull.platforms`` annotation) and the index blob is kept, but only the chosen platform's
manifest is listed in ``index.json``: the other platforms' layers are not downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..images import platform_matches, platform_string
from ..model import ScanError
from .client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    NotFound,
    RegistryClient,
    RegistryError,
)
from .netpolicy import NetPolicy
from .options import PullOptions
from .reference import Reference, parse_reference

INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
BUNDLE_TYPES = {
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
}
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
SUBJECT_ANNOTATION = "dev.lowerdir.referrer.subject"
PULL_PREFIX = "dev.lowerdir.pull."
MAX_REFERRERS = 32  # signature artefacts fetched per subject digest
MAX_SIG_LAYERS = 16


@dataclass
class PullResult:
    reference: str  # normalised, as asked
    registry: str
    repository: str
    tag: str
    requested_digest: str  # "" for a tag reference
    resolved_digest: str  # what the tag (or digest) named: an index or a manifest
    manifest_digest: str  # the chosen platform's manifest
    media_type: str
    platform: str
    platforms: list[dict] = field(default_factory=list)  # every platform of an index
    pulled_at: str = ""
    path: str = ""
    sha256: str = ""
    size: int = 0
    bytes_downloaded: int = 0
    mismatches: list[str] = field(default_factory=list)
    signature_artifacts: list[dict] = field(default_factory=list)  # what was found: kind, digest, subject

    @property
    def pinned(self) -> str:
        return f"{self.registry}/{self.repository}@{self.resolved_digest}"

    def custody_text(self) -> str:
        target = f"{self.tag}" if self.tag else self.requested_digest
        text = (
            f"pulled from {self.registry}/{self.repository} at {self.pulled_at}; {target} resolved to "
            f"{self.resolved_digest}"
        )
        if self.manifest_digest != self.resolved_digest:
            text += f" ({self.platform} manifest {self.manifest_digest})"
        return text


class _Store:
    """Blobs written under their claimed digest in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        self.blobs: dict[str, int] = {}  # claimed digest -> size

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def put(self, digest: str, data: bytes) -> None:
        if digest not in self.blobs:
            self.path(digest).write_bytes(data)
            self.blobs[digest] = len(data)


def _check_digest(digest: object, what: str) -> str:
    if (
        not isinstance(digest, str)
        or not digest.startswith("sha256:")
        or len(digest) != 71
        or not all(c in "0123456789abcdef" for c in digest[7:])
    ):
        raise RegistryError(f"{what}: unsupported or invalid digest {str(digest)[:100]!r} (sha256 only)")
    return digest


def _json(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise RegistryError(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return doc


def _media(doc: dict, manifest: Manifest) -> str:
    media = doc.get("mediaType")
    if isinstance(media, str) and media:
        return media
    if manifest.media_type in INDEX_TYPES | MANIFEST_TYPES:
        return manifest.media_type
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class _Puller:
    def __init__(
        self,
        ref: Reference,
        client: RegistryClient,
        store: _Store,
        options: PullOptions,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.ref, self.client, self.store, self.options = ref, client, store, options
        self.limits = options.limits
        self.progress = progress
        self.mismatches: list[str] = []
        self.total = 0
        self.done = 0

    def _count(self, size: int) -> None:
        self.total += size
        if self.total > self.options.max_total_bytes:
            raise RegistryError(f"the image is over the {self.options.max_total_bytes}-byte bound for a pull")

    def manifest(self, ref: str, claimed: str = "", what: str = "manifest") -> tuple[str, dict, Manifest]:
        """Fetch a manifest or index; store it under the digest that named it. Returns (digest, doc, raw)."""
        got = self.client.get_manifest(self.ref.repository, ref)
        self._count(len(got.data))
        if claimed:
            if got.digest != claimed:
                self.mismatches.append(
                    f"{what} {claimed}: the registry served content with digest {got.digest}"
                )
        else:
            claimed = got.digest
            if got.header_digest and got.header_digest != got.digest:
                if got.header_digest.startswith("sha256:"):
                    claimed = _check_digest(got.header_digest, what)
                self.mismatches.append(
                    f"{what} {ref}: the registry named it {got.header_digest} but its "
                    f"content has digest {got.digest}"
                )
        doc = _json(got.data, f"{what} {claimed}")
        self.store.put(claimed, got.data)
        return claimed, doc, got

    def blob(self, digest: str, size: object, max_bytes: int, what: str) -> None:
        _check_digest(digest, what)
        if digest in self.store.blobs:
            return
        if isinstance(size, int) and not isinstance(size, bool) and size > max_bytes:
            raise RegistryError(f"{what} {digest} is {size} bytes, over the {max_bytes}-byte bound")
        room = self.options.max_total_bytes - self.total
        path = self.store.path(digest)
        with open(path, "wb") as out:
            try:
                result = self.client.fetch_blob(
                    self.ref.repository,
                    digest,
                    out,
                    max_bytes=min(max_bytes, max(room, 0)),
                    progress=self._progress,
                )
            except RegistryError as exc:
                if "bound" in str(exc) and room < max_bytes:
                    raise RegistryError(
                        f"the image is over the {self.options.max_total_bytes}-byte bound for a pull"
                    ) from None
                raise
        self._count(result.size)
        self.store.blobs[digest] = result.size
        if result.digest != digest:
            self.mismatches.append(
                f"{what} {digest}: the registry served content with digest {result.digest}"
            )
        elif isinstance(size, int) and size >= 0 and size != result.size:
            self.mismatches.append(
                f"{what} {digest}: the descriptor says {size} bytes, the blob has {result.size}"
            )

    def _progress(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, 0)

    def image(self, digest: str, doc: dict) -> None:
        """The config and layers of one image manifest."""
        if doc.get("schemaVersion") == 1:
            raise RegistryError("schema 1 manifests are not supported")
        config = doc.get("config")
        layers = doc.get("layers")
        if not isinstance(config, dict) or not isinstance(layers, list):
            raise RegistryError(f"manifest {digest} has no config or no layers list")
        if len(layers) > self.limits.max_layers:
            raise RegistryError(
                f"manifest {digest} has {len(layers)} layers, over the bound of {self.limits.max_layers}"
            )
        self.blob(config.get("digest"), config.get("size"), self.limits.max_json_bytes, "config")  # type: ignore
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                raise RegistryError(f"manifest {digest} layer {i} is not an object")
            self.blob(layer.get("digest"), layer.get("size"), self.limits.max_layer_bytes, f"layer {i}")  # type: ignore

    # -- signatures ----------------------------------------------------------------------------------
    def signatures(self, subjects: list[str]) -> list[dict]:
        """Referrers (API, else the ``sha256-<hex>`` tag) and legacy ``.sig`` tags for each subject."""
        found: list[dict] = []
        for subject in subjects:
            hexd = subject.split(":", 1)[1]
            descriptors: list[dict] = []
            raw = self.client.referrers(self.ref.repository, subject)
            source = "referrers API"
            if raw is None:
                source = f"referrers tag sha256-{hexd}"
                try:
                    _, doc, _ = self.manifest(f"sha256-{hexd}", what="referrers index")
                    descriptors = [d for d in doc.get("manifests") or [] if isinstance(d, dict)]
                except NotFound:
                    descriptors = []
            else:
                self._count(len(raw))
                doc = _json(raw, f"referrers of {subject}")
                descriptors = [d for d in doc.get("manifests") or [] if isinstance(d, dict)]
            kept = 0
            for desc in descriptors:
                if desc.get("artifactType") not in BUNDLE_TYPES or kept >= MAX_REFERRERS:
                    continue
                digest = _check_digest(desc.get("digest"), "referrer")
                _, mdoc, raw_m = self.manifest(digest, claimed=digest, what="referrer manifest")
                self._sig_layers(digest, mdoc, BUNDLE_TYPES)
                found.append(
                    {
                        "kind": "sigstore-bundle",
                        "digest": digest,
                        "subject": subject,
                        "size": len(raw_m.data),
                        "media_type": _media(mdoc, raw_m),
                        "artifact_type": desc.get("artifactType"),
                        "source": source,
                    }
                )
                kept += 1
            try:
                digest, mdoc, raw_m = self.manifest(f"sha256-{hexd}.sig", what="legacy signature manifest")
            except NotFound:
                continue
            self._sig_layers(digest, mdoc, {SIMPLESIGNING})
            found.append(
                {
                    "kind": "cosign-legacy",
                    "digest": digest,
                    "subject": subject,
                    "size": len(raw_m.data),
                    "media_type": _media(mdoc, raw_m),
                    "tag": f"sha256-{hexd}.sig",
                    "source": f"tag sha256-{hexd}.sig",
                }
            )
        return found

    def _sig_layers(self, digest: str, doc: dict, types: set[str]) -> None:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            return
        config = doc.get("config")
        if isinstance(config, dict) and isinstance(config.get("digest"), str):
            self.blob(config["digest"], config.get("size"), self.limits.max_json_bytes, "signature config")
        for layer in layers[:MAX_SIG_LAYERS]:
            if isinstance(layer, dict) and layer.get("mediaType") in types:
                self.blob(
                    layer.get("digest"),
                    layer.get("size"),
                    self.limits.max_json_bytes,  # type: ignore
                    "signature layer",
                )


def pull(
    reference: str | Reference,
    dest: str | os.PathLike,
    *,
    policy: NetPolicy,
    options: PullOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    transport=None,
) -> PullResult:
    """Resolve and pull ``reference`` into an OCI layout archive at ``dest``; see the module docstring.

    Raises :class:`RegistryError` (or another ``ScanError``) with one readable line.
    """
    options = options or PullOptions()
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    dest = Path(dest)
    pulled_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    work = Path(tempfile.mkdtemp(prefix=".pull-", dir=dest.parent))
    try:
        store = _Store(work)
        creds = options.credentials.get(ref.registry) or options.credentials.get(ref.api_registry)
        with RegistryClient(
            ref.api_registry,
            policy,
            credentials=creds,
            limits=options.limits,
            timeout=options.timeout,
            transport=transport,
        ) as client:
            puller = _Puller(ref, client, store, options, progress)
            top_digest, top, top_raw = puller.manifest(ref.target, claimed=ref.digest, what="manifest")
            top_media = _media(top, top_raw)
            platforms: list[dict] = []
            manifest_digest, manifest_doc, media = top_digest, top, top_media
            index_chain: list[str] = []
            depth = 0
            while media in INDEX_TYPES or ("manifests" in manifest_doc and "layers" not in manifest_doc):
                depth += 1
                if depth > options.limits.max_index_depth:
                    raise RegistryError(
                        f"image indexes are nested more than {options.limits.max_index_depth} deep"
                    )
                index_chain.append(manifest_digest)
                entries = [d for d in manifest_doc.get("manifests") or [] if isinstance(d, dict)]
                if len(entries) > options.limits.max_manifests:
                    raise RegistryError(
                        f"the index lists {len(entries)} manifests, over the bound of "
                        f"{options.limits.max_manifests}"
                    )
                candidates = []
                for desc in entries:
                    plat = platform_string(desc.get("platform"))
                    if plat == "unknown/unknown" or (
                        desc.get("mediaType") not in INDEX_TYPES | MANIFEST_TYPES and desc.get("mediaType")
                    ):
                        continue
                    digest = _check_digest(desc.get("digest"), "index entry")
                    platforms.append(
                        {"platform": plat, "digest": digest, "media_type": desc.get("mediaType", "")}
                    )
                    candidates.append((plat, digest, desc))
                chosen = [c for c in candidates if c[0] and platform_matches(c[0], options.platform)]
                if not chosen and len(candidates) == 1:
                    chosen = candidates
                if not chosen:
                    have = ", ".join(sorted({c[0] or "?" for c in candidates})) or "none"
                    raise RegistryError(
                        f"{ref} has no image for platform {options.platform} (available: {have})"
                    )
                _plat, digest, desc = chosen[0]
                manifest_digest, manifest_doc, raw = puller.manifest(
                    digest, claimed=digest, what="platform manifest"
                )
                media = _media(manifest_doc, raw)
            if media not in MANIFEST_TYPES:
                raise RegistryError(f"{ref} is not a container image (media type {media[:100]!r})")
            puller.image(manifest_digest, manifest_doc)
            chosen_platform = next((p["platform"] for p in platforms if p["digest"] == manifest_digest), "")
            if not chosen_platform:
                cfg = manifest_doc.get("config", {})
                try:
                    chosen_platform = platform_string(json.loads(store.path(cfg["digest"]).read_bytes()))
                except (OSError, ValueError, KeyError, TypeError):
                    chosen_platform = ""
            artifacts = puller.signatures([*index_chain, manifest_digest]) if options.signatures else []
            downloaded = client.bytes_downloaded
        result = PullResult(
            reference=str(ref),
            registry=ref.registry,
            repository=ref.repository,
            tag=ref.tag_or_latest,
            requested_digest=ref.digest,
            resolved_digest=top_digest,
            manifest_digest=manifest_digest,
            media_type=top_media,
            platform=chosen_platform,
            platforms=platforms,
            pulled_at=pulled_at,
            bytes_downloaded=downloaded,
            mismatches=puller.mismatches,
            signature_artifacts=artifacts,
        )
        _write_archive(dest, store, result, manifest_doc, media)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _HashingWriter:
    def __init__(self, fh) -> None:
        self.fh = fh
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def tell(self) -> int:
        return self.size


def _index_json(store: _Store, result: PullResult, manifest_media: str) -> bytes:
    name = (
        f"{result.registry}/{result.repository}@{result.requested_digest}"
        if result.requested_digest
        else f"{result.registry}/{result.repository}:{result.tag}"
    )
    image = {
        "mediaType": manifest_media,
        "digest": result.manifest_digest,
        "size": store.blobs[result.manifest_digest],
        "annotations": {REF_NAME: name, IMAGE_NAME: name},
    }
    if result.platform:
        parts = result.platform.split("/")
        image["platform"] = {"os": parts[0], "architecture": parts[1] if len(parts) > 1 else ""}
        if len(parts) > 2:
            image["platform"]["variant"] = parts[2]
    manifests = [image]
    for art in result.signature_artifacts:
        desc = {
            "mediaType": art["media_type"],
            "digest": art["digest"],
            "size": art["size"],
            "annotations": {SUBJECT_ANNOTATION: art["subject"]},
        }
        if art["kind"] == "sigstore-bundle":
            desc["artifactType"] = art["artifact_type"]
        else:
            desc["annotations"][REF_NAME] = art["tag"]
        if all(m["digest"] != desc["digest"] for m in manifests):
            manifests.append(desc)
    annotations = {
        PULL_PREFIX + "reference": result.reference,
        PULL_PREFIX + "registry": result.registry,
        PULL_PREFIX + "repository": result.repository,
        PULL_PREFIX + "tag": result.tag,
        PULL_PREFIX + "requested-digest": result.requested_digest,
        PULL_PREFIX + "digest": result.resolved_digest,
        PULL_PREFIX + "media-type": result.media_type,
        PULL_PREFIX + "manifest-digest": result.manifest_digest,
        PULL_PREFIX + "platform": result.platform,
        PULL_PREFIX + "platforms": json.dumps(result.platforms, sort_keys=True, separators=(",", ":")),
        PULL_PREFIX + "time": result.pulled_at,
    }
    if result.mismatches:
        annotations[PULL_PREFIX + "mismatches"] = json.dumps(result.mismatches, separators=(",", ":"))
    return _dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
            "annotations": {k: v for k, v in annotations.items() if v},
        }
    )


def _write_archive(
    dest: Path, store: _Store, result: PullResult, manifest_doc: dict, manifest_media: str
) -> None:
    index = _index_json(store, result, manifest_media)
    tmp = dest.with_name(dest.name + ".partial")
    with open(tmp, "wb") as raw:
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]

            def add(name: str, data: bytes | None = None, path: Path | None = None) -> None:
                info = tarfile.TarInfo(name)
                info.mode, info.mtime, info.uname, info.gname = 0o644, 0, "", ""
                if data is None and path is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                elif path is not None:
                    info.size = path.stat().st_size
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    info.size = len(data)  # type: ignore[arg-type]
                    import io

                    tar.addfile(info, io.BytesIO(data))  # type: ignore[arg-type]

            add("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}))
            add("blobs/")
            add("blobs/sha256/")
            for digest in sorted(store.blobs):
                add(f"blobs/sha256/{digest.split(':', 1)[1]}", path=store.path(digest))
            add("index.json", index)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, dest)
    result.path = str(dest)
    result.sha256 = writer.h.hexdigest()
    result.size = writer.size


__all__ = ["PullOptions", "PullResult", "RegistryError", "ScanError", "pull"]
