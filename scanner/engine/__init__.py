"""The Lowerdir scanning engine: no Django, no network, nothing executed or extracted.

    from scanner.engine import scan, ScanOptions
    report = scan("image.tar", options=ScanOptions(jobs=2), progress=lambda done, total: ...)

``scan`` returns a :class:`~scanner.engine.model.ScanReport` (plain dataclasses) or raises
:class:`~scanner.engine.model.ScanError` with one readable line. ``open_layer_file`` streams one
file's bytes out of one layer (evidence recovery). :mod:`scanner.engine.report` turns a report into
DESIGN §4's JSON or a table.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .images import ImagePlan, list_images, resolve
from .layers import LayerScan, stream_file
from .limits import DEFAULT_LIMITS, LimitExceeded, Limits
from .model import (
    SCHEMA,
    Change,
    EntryType,
    FileEntry,
    Finding,
    GraveyardEntry,
    ImageResult,
    LayerResult,
    ScanError,
    ScanReport,
    Severity,
    SourceInfo,
    Stats,
)
from .parallel import run_layers
from .sources import open_source, parse_spec
from .tree import merge

__version__ = "0.1.0"

__all__ = [
    "SCHEMA", "Change", "EntryType", "FileEntry", "Finding", "GraveyardEntry", "ImageResult", "LayerResult",
    "LimitExceeded", "Limits", "ScanError", "ScanOptions", "ScanReport", "Severity", "SourceInfo", "Stats",
    "list_platforms", "open_layer_file", "scan",
]

Progress = Callable[[int, int], None]


@dataclass
class ScanOptions:
    platform: str = "linux/amd64"  # which image of a multi-platform index ("os/arch[/variant]")
    all_platforms: bool = False  # scan every platform instead
    jobs: int = 1  # worker processes for layers (>= 1)
    limits: Limits = field(default_factory=Limits)
    hash_source: bool = False  # SHA-256 the whole source file for SourceInfo (an extra read)
    source_sha256: str = ""  # ...or give it when already known (the web app hashes on intake)


def scan(source: str, *, options: ScanOptions | None = None, progress: Progress | None = None) -> ScanReport:
    """Scan an image archive or layout; see the module docstring."""
    opts = options or ScanOptions()
    if not isinstance(opts.jobs, int) or opts.jobs < 1:
        raise ValueError("ScanOptions.jobs must be an integer >= 1")
    started = time.monotonic()
    spec = parse_spec(source)
    with open_source(spec, opts.limits) as src:
        plans = resolve(src, platform=opts.platform, all_platforms=opts.all_platforms, ref=spec.ref,
                        limits=opts.limits)
        kind = src.kind
    # Each distinct blob is scanned once, however many images or positions use it.
    slots: dict[tuple[str, int, int], int] = {}
    blobs = []
    for plan in plans:
        for layer in plan.layers:
            loc = layer.location
            key = (loc.path, loc.offset, loc.size)
            if key not in slots:
                slots[key] = len(blobs)
                alg = layer.digest.split(":", 1)[0] if layer.digest else "sha256"
                blobs.append((loc, alg))
    scans = run_layers(blobs, opts.limits, opts.jobs, progress)
    used: set[int] = set()
    images = [_assemble(plan, scans, slots, used) for plan in plans]
    sha = opts.source_sha256 or (_hash_file(spec.path) if opts.hash_source else "")
    stats = Stats(
        layers=sum(len(image.layers) for image in images),
        files=sum(len(image.files) for image in images),
        bytes_read=sum(s.compressed_size for s in scans),
        seconds=round(time.monotonic() - started, 3),
    )
    return ScanReport(SourceInfo(spec.path, kind, sha), images, stats)


def _hash_file(path: str) -> str:
    if not os.path.isfile(path):
        return ""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(mv[:n])
    return h.hexdigest()


def _media_type(compression: str) -> str:
    base = "application/vnd.docker.image.rootfs.diff.tar"
    return base + (".gzip" if compression == "gzip" else "+zstd" if compression == "zstd" else "")


def _assemble(plan: ImagePlan, scans: list[LayerScan], slots: dict[tuple[str, int, int], int],
              used: set[int]) -> ImageResult:
    findings = list(plan.findings)
    layers: list[LayerResult] = []
    per_layer: list[list[FileEntry]] = []
    for lp in plan.layers:
        loc = lp.location
        slot = slots[(loc.path, loc.offset, loc.size)]
        sc = scans[slot]
        entries = sc.entries if slot not in used else [copy.copy(e) for e in sc.entries]
        used.add(slot)
        for entry in entries:
            entry.layer_index = lp.index
        per_layer.append(entries)
        digest = lp.digest or sc.blob_digest
        trusted = sc.complete
        if lp.digest and lp.digest != sc.blob_digest:
            trusted = False
            findings.append(_layer_mismatch(lp.index, digest, "blob", lp.digest, sc.blob_digest))
        if lp.diff_id and sc.diff_id and lp.diff_id != sc.diff_id:
            trusted = False
            findings.append(_layer_mismatch(lp.index, digest, "uncompressed content (diff_id)",
                                            lp.diff_id, sc.diff_id))
        if not lp.diff_id:
            trusted = False  # nothing in the config to verify the content against
        for rule, severity, title, detail, path, sha in sc.issues:
            findings.append(Finding(rule, severity, f"layer {lp.index}: {title}", detail, lp.index, digest,
                                    path, sha))
        layers.append(LayerResult(
            index=lp.index, digest=digest, diff_id=lp.diff_id or sc.diff_id,
            media_type=lp.media_type or _media_type(sc.compression), size=lp.size,
            uncompressed_size=sc.uncompressed_size, created_by=lp.created_by,
            empty_history=list(lp.empty_history), trusted=trusted, actual_digest=sc.blob_digest,
            actual_diff_id=sc.diff_id, compression=sc.compression, complete=sc.complete,
        ))
    graveyard, counts = merge(per_layer)
    for layer, count in zip(layers, counts, strict=True):
        layer.files_added, layer.files_modified = count.added, count.modified
        layer.files_deleted = count.deleted
    cfg = plan.config.get("config")
    user = cfg.get("User") if isinstance(cfg, dict) else ""
    created = plan.config.get("created")
    return ImageResult(
        manifest_digest=plan.manifest_digest, config_digest=plan.config_digest, repo_tags=plan.repo_tags,
        platform=plan.platform, user=user if isinstance(user, str) else "",
        created=created if isinstance(created, str) else "", config=plan.config, layers=layers,
        files=[entry for entries in per_layer for entry in entries], graveyard=graveyard,
        findings=findings, trailing_history=plan.trailing_history,
    )


def _layer_mismatch(index: int, digest: str, what: str, expected: str, actual: str) -> Finding:
    return Finding(
        rule_id="integrity.digest-mismatch", severity=Severity.CRITICAL,
        title=f"layer {index} {what} does not match its digest",
        detail=f"layer {index} {what}: expected {expected}, actual {actual}. The layer was tampered "
               "with or is corrupt; its content is untrusted.",
        layer_index=index, layer_digest=digest, sha256=actual.split(":", 1)[-1],
    )


def list_platforms(source: str, *, limits: Limits | None = None) -> list[dict]:
    """Every image in the source: platform, manifest and config digests, names."""
    limits = limits or DEFAULT_LIMITS
    with open_source(parse_spec(source), limits) as src:
        plans = list_images(src, limits=limits)
    return [{"platform": p.platform, "manifest_digest": p.manifest_digest, "config_digest": p.config_digest,
             "repo_tags": p.repo_tags, "layers": len(p.layers)} for p in plans]


def open_layer_file(source: str, layer_index: int, path: str, *, platform: str = "linux/amd64",
                    limits: Limits | None = None) -> Iterator[bytes]:
    """Stream the bytes of ``path`` as stored in layer ``layer_index`` (0-based) of the image.

    The image and layer are resolved now (ScanError if either is missing); the returned iterator
    raises ScanError if the path is not a regular file of that layer. Deleted and shadowed files are
    recoverable this way from the layer that added them. Digests are not checked here: scan first.
    """
    limits = limits or DEFAULT_LIMITS
    spec = parse_spec(source)
    with open_source(spec, limits) as src:
        plans = resolve(src, platform=platform, ref=spec.ref, limits=limits)
    plan = plans[0]
    if not 0 <= layer_index < len(plan.layers):
        raise ScanError(f"layer {layer_index} does not exist: the image has {len(plan.layers)} layers "
                        f"(0-{len(plan.layers) - 1})")
    return stream_file(plan.layers[layer_index].location, path, limits)
