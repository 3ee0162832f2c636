"""From a source to image plans: indexes, manifests and configs read, verified and checked for shape.

Every document is bounded (``max_json_bytes``) and its structure validated before use; a document
that is not what it claims is a ScanError with one readable line. Digest mismatches of manifests and
configs are findings (tampered evidence), not errors: the scan goes on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from .compression import BlobLocation
from .limits import Limits
from .model import Finding, ScanError, Severity
from .sources import Source, check_digest, load_json

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
ANNOTATION_NAME = "io.containerd.image.name"
ANNOTATION_REF = "org.opencontainers.image.ref.name"
_SIGNATURE_TAG = re.compile(r"^sha256-[0-9a-f]{64}(\.sig|\.att|\.sbom)?$")


@dataclass(slots=True)
class LayerPlan:
    index: int
    digest: str  # from the manifest ("" in a legacy docker-archive: it has no manifest)
    diff_id: str  # from the config ("" if the config lists fewer)
    media_type: str
    size: int  # the descriptor's size, else the stored size
    location: BlobLocation
    created_by: str = ""
    empty_history: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ImagePlan:
    manifest_digest: str
    config_digest: str
    platform: str
    repo_tags: list[str]
    config: dict
    layers: list[LayerPlan]
    findings: list[Finding] = field(default_factory=list)
    trailing_history: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Candidate:
    digest: str
    location: BlobLocation
    platform: str  # "" when the descriptor has none: taken from the config
    tags: list[str]
    media_type: str
    size: int
    index_digest: str = ""


def platform_string(doc: object) -> str:
    if not isinstance(doc, dict):
        return ""
    osname, arch, variant = doc.get("os"), doc.get("architecture"), doc.get("variant")
    if not isinstance(osname, str) or not isinstance(arch, str):
        return ""
    text = f"{osname}/{arch}"
    if isinstance(variant, str) and variant:
        text += f"/{variant}"
    return text


def platform_matches(have: str, want: str) -> bool:
    """``linux/arm64`` matches ``linux/arm64/v8``; a wanted variant must match exactly."""
    h, w = have.split("/"), want.split("/")
    if h[:2] != w[:2]:
        return False
    if len(w) > 2:
        return (h[2] if len(h) > 2 else ("v8" if h[1] == "arm64" else "")) == w[2]
    return True


def _digest_of(data: bytes, alg: str) -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def _mismatch(what: str, expected: str, actual: str) -> Finding:
    return Finding(
        rule_id="integrity.digest-mismatch", severity=Severity.CRITICAL,
        title=f"{what} does not match its digest",
        detail=f"{what}: expected {expected}, actual {actual}. The evidence was tampered with or is corrupt.",
        sha256=actual.split(":", 1)[-1],
    )


def _read_verified(src: Source, digest: str, what: str, findings: list[Finding]) -> tuple[object, bytes]:
    loc = src.blob(digest, what)
    data = src.read(loc, what)
    alg, _ = check_digest(digest, what)
    actual = _digest_of(data, alg)
    if actual != digest:
        findings.append(_mismatch(what, digest, actual))
    return load_json(data, what), data


def _obj(doc: object, what: str) -> dict:
    if not isinstance(doc, dict):
        raise ScanError(f"{what} is not a JSON object")
    return doc


def _list(doc: dict, key: str, what: str, *, required: bool = True) -> list:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise ScanError(f"{what}: {key!r} is missing or not a list")
    return value


def _str(doc: dict, key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def _size(doc: dict, what: str) -> int:
    size = doc.get("size", -1)
    if not isinstance(size, int) or isinstance(size, bool) or size < -1:
        raise ScanError(f"{what}: size is not a non-negative integer")
    return size


def _tags_from(annotations: object) -> list[str]:
    if not isinstance(annotations, dict):
        return []
    for key in (ANNOTATION_NAME, ANNOTATION_REF):
        value = annotations.get(key)
        if isinstance(value, str) and value:
            return [value]
    return []


def _is_attestation(desc: dict) -> bool:
    ann = desc.get("annotations")
    if isinstance(ann, dict) and ann.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    if isinstance(desc.get("artifactType"), str) and desc["artifactType"]:
        return True  # an OCI 1.1 artifact (signature bundle, SBOM...) listed beside the image
    if isinstance(ann, dict) and _SIGNATURE_TAG.match(str(ann.get(ANNOTATION_REF, ""))):
        return True  # cosign's sha256-<hex>.sig/.att/.sbom tags and the referrers tag schema
    return platform_string(desc.get("platform")) == "unknown/unknown"


def _walk_index(src: Source, index: dict, what: str, depth: int, tags: list[str], index_digest: str,
                out: list[_Candidate], findings: list[Finding], limits: Limits) -> None:
    for i, desc in enumerate(_list(index, "manifests", what)):
        dwhat = f"{what} entry {i}"
        desc = _obj(desc, dwhat)
        digest = desc.get("digest")
        check_digest(digest, dwhat)
        media = _str(desc, "mediaType")
        entry_tags = _tags_from(desc.get("annotations")) or tags
        if _is_attestation(desc):
            continue
        if media in INDEX_TYPES:
            if depth >= limits.max_index_depth:
                raise ScanError(f"image indexes are nested more than {limits.max_index_depth} deep")
            sub, _ = _read_verified(src, digest, f"image index {digest}", findings)  # type: ignore[arg-type]
            _walk_index(src, _obj(sub, f"image index {digest}"), f"image index {digest}", depth + 1,
                        entry_tags, digest, out, findings, limits)  # type: ignore[arg-type]
            continue
        if media and media not in MANIFEST_TYPES:
            continue  # artifacts, signatures, schema-1 manifests: not images we can scan
        out.append(_Candidate(digest, src.blob(digest, f"manifest {digest}"),  # type: ignore[arg-type]
                              platform_string(desc.get("platform")), list(entry_tags), media,
                              _size(desc, dwhat), index_digest))
        if len(out) > limits.max_manifests:
            raise ScanError(f"more than {limits.max_manifests} image manifests in the source")


def _history(config: dict, n_layers: int) -> tuple[list[str], list[list[str]], list[str]]:
    """created_by per layer, the empty-layer commands before each layer, and those after the last."""
    created: list[str] = []
    empties: list[list[str]] = []
    pending: list[str] = []
    history = config.get("history")
    for item in history if isinstance(history, list) else []:
        if not isinstance(item, dict):
            continue
        command = _str(item, "created_by") or _str(item, "comment")
        if item.get("empty_layer") is True:
            pending.append(command)
        elif len(created) < n_layers:
            created.append(command)
            empties.append(pending)
            pending = []
    while len(created) < n_layers:
        created.append("")
        empties.append([])
    return created, empties, pending


def _plan_from_config(config: dict, manifest_digest: str, config_digest: str, platform: str,
                      tags: list[str], layer_specs: list[tuple[str, str, int, BlobLocation]],
                      findings: list[Finding], limits: Limits) -> ImagePlan:
    if len(layer_specs) > limits.max_layers:
        raise ScanError(f"the image has {len(layer_specs)} layers, over the bound of {limits.max_layers}")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        diff_ids = []
    if len(diff_ids) != len(layer_specs):
        findings.append(Finding(
            rule_id="integrity.digest-mismatch", severity=Severity.CRITICAL,
            title="the config and the manifest disagree on the number of layers",
            detail=f"the manifest lists {len(layer_specs)} layers, the config's rootfs.diff_ids "
                   f"{len(diff_ids)}: layers cannot all be verified",
        ))
    created, empties, trailing = _history(config, len(layer_specs))
    layers = [
        LayerPlan(i, digest, diff_ids[i] if i < len(diff_ids) else "", media, size, loc,
                  created[i], empties[i])
        for i, (digest, media, size, loc) in enumerate(layer_specs)
    ]
    return ImagePlan(manifest_digest, config_digest, platform or platform_string(config), tags,
                     config, layers, findings, trailing)


def _oci_plans(src: Source, limits: Limits) -> list[tuple[_Candidate, ImagePlan]]:
    findings: list[Finding] = []
    index_loc = src.locate("index.json", "index.json")
    index = _obj(load_json(src.read(index_loc, "index.json"), "index.json"), "index.json")
    candidates: list[_Candidate] = []
    _walk_index(src, index, "index.json", 0, [], "", candidates, findings, limits)
    # Docker 25+ archives also carry manifest.json with RepoTags, keyed by the config path.
    docker_tags: dict[str, list[str]] = {}
    if src.kind == "docker-archive" and src.exists("manifest.json"):
        for entry in _docker_manifest(src):
            cfg = entry.get("Config")
            if isinstance(cfg, str) and cfg.startswith("blobs/"):
                parts = cfg.split("/")
                if len(parts) == 3:
                    docker_tags.setdefault(f"{parts[1]}:{parts[2]}", []).extend(
                        t for t in entry.get("RepoTags") or [] if isinstance(t, str))
    merged: dict[str, _Candidate] = {}
    for cand in candidates:
        if cand.digest in merged:
            merged[cand.digest].tags.extend(t for t in cand.tags if t not in merged[cand.digest].tags)
        else:
            merged[cand.digest] = cand
    plans: list[tuple[_Candidate, ImagePlan]] = []
    for cand in merged.values():
        image_findings = list(findings)
        what = f"manifest {cand.digest}"
        doc, raw = _read_verified(src, cand.digest, what, image_findings)
        manifest = _obj(doc, what)
        media = _str(manifest, "mediaType") or cand.media_type
        if media in INDEX_TYPES or "manifests" in manifest:
            raise ScanError(f"{what} is an image index where a manifest was expected")
        if manifest.get("schemaVersion") == 1:
            raise ScanError(f"{what} is a schema 1 manifest, which is not supported")
        cfg_desc = _obj(manifest.get("config"), f"{what} config descriptor")
        cfg_digest = cfg_desc.get("digest")
        check_digest(cfg_digest, f"{what} config")
        cfg_doc, _ = _read_verified(src, cfg_digest, f"config {cfg_digest}", image_findings)  # type: ignore
        config = _obj(cfg_doc, f"config {cfg_digest}")
        specs = []
        for i, layer in enumerate(_list(manifest, "layers", what)):
            lwhat = f"{what} layer {i}"
            layer = _obj(layer, lwhat)
            ldigest = layer.get("digest")
            check_digest(ldigest, lwhat)
            loc = src.blob(ldigest, f"layer {i}")
            size = _size(layer, lwhat)
            specs.append((ldigest, _str(layer, "mediaType"), size if size >= 0 else loc.size, loc))
        tags = list(cand.tags)
        for tag in docker_tags.get(cfg_digest, []):  # type: ignore[call-overload]
            if tag not in tags:
                tags.append(tag)
        plans.append((cand, _plan_from_config(config, cand.digest, cfg_digest, cand.platform,  # type: ignore
                                              tags, specs, image_findings, limits)))
    return plans


def _docker_manifest(src: Source) -> list[dict]:
    loc = src.locate("manifest.json", "manifest.json")
    doc = load_json(src.read(loc, "manifest.json"), "manifest.json")
    if not isinstance(doc, list) or not doc:
        raise ScanError("manifest.json is not a non-empty list of images")
    return [_obj(entry, f"manifest.json entry {i}") for i, entry in enumerate(doc)]


def _legacy_plans(src: Source, limits: Limits) -> list[tuple[_Candidate | None, ImagePlan]]:
    plans: list[tuple[_Candidate | None, ImagePlan]] = []
    for i, entry in enumerate(_docker_manifest(src)):
        what = f"manifest.json entry {i}"
        findings: list[Finding] = []
        cfg_name = entry.get("Config")
        if not isinstance(cfg_name, str):
            raise ScanError(f"{what}: Config is missing")
        cfg_loc = src.locate(cfg_name, f"{what} config")
        raw = src.read(cfg_loc, f"config {cfg_name[:100]}")
        actual = _digest_of(raw, "sha256")
        stem = cfg_name.rsplit("/", 1)[-1].removesuffix(".json")
        named = len(stem) == 64 and all(c in "0123456789abcdef" for c in stem)
        if named and f"sha256:{stem}" != actual:  # the file is named by its digest
            findings.append(_mismatch(f"config {cfg_name[:100]}", f"sha256:{stem}", actual))
        config = _obj(load_json(raw, f"config {cfg_name[:100]}"), f"config {cfg_name[:100]}")
        specs = []
        for j, name in enumerate(_list(entry, "Layers", what)):
            if not isinstance(name, str):
                raise ScanError(f"{what}: layer {j} is not a path")
            loc = src.locate(name, f"layer {j}")
            specs.append(("", "", loc.size, loc))
        tags = [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
        plans.append((None, _plan_from_config(config, "", actual, "", tags, specs, findings, limits)))
    return plans


def resolve(src: Source, *, platform: str = "linux/amd64", all_platforms: bool = False,
            ref: str = "", limits: Limits) -> list[ImagePlan]:
    """The images to scan: every platform with ``all_platforms``, else those matching ``platform``
    (a source holding one platform only is scanned whatever it is)."""
    plans = list_images(src, limits=limits)
    if ref:
        chosen = [p for p in plans if any(t == ref or t.endswith(":" + ref) or t.endswith("/" + ref)
                                          for t in p.repo_tags)]
        if not chosen:
            known = sorted({t for p in plans for t in p.repo_tags})
            names = ", ".join(known) or "no names"
            raise ScanError(f"no image named {ref!r} in the source (it has: {names})")
        plans = chosen
    if all_platforms:
        return plans
    matching = [p for p in plans if platform_matches(p.platform, platform)]
    if matching:
        return matching
    if len({p.platform for p in plans}) <= 1:
        return plans
    available = ", ".join(sorted({p.platform for p in plans}))
    raise ScanError(f"no image for platform {platform} in the source (available: {available})")


def list_images(src: Source, *, limits: Limits) -> list[ImagePlan]:
    if src.exists("index.json"):
        return [plan for _, plan in _oci_plans(src, limits)]
    if src.kind == "docker-archive":
        return [plan for _, plan in _legacy_plans(src, limits)]
    raise ScanError("not an image: no index.json or manifest.json")
