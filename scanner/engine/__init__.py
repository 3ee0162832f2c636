"""The Lowerdir scanning engine: no Django, no network, nothing executed or extracted.

    from scanner.engine import scan, ScanOptions
    report = scan("image.tar", options=ScanOptions(jobs=2), progress=lambda done, total: ...)

``scan`` returns a :class:`~scanner.engine.model.ScanReport` (plain dataclasses) or raises
:class:`~scanner.engine.model.ScanError` with one readable line. ``open_layer_file`` streams one
file's bytes out of one layer (evidence recovery). :mod:`scanner.engine.report` turns a report into
DESIGN §4's JSON or a table.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .assemble import ImageBuilder
from .images import list_images, resolve
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
from .registry.provenance import pull_findings
from .registry.source import RegistryConfig, scan_reference
from .rules.content import plan_for
from .rules.evaluate import evaluate
from .rules.loader import RuleSet, load_ruleset
from .signatures import SignaturePolicy, check_images
from .sources import open_source, parse_spec

__version__ = "0.1.0"

__all__ = [
    "SCHEMA", "Change", "EntryType", "FileEntry", "Finding", "GraveyardEntry", "ImageResult", "LayerResult",
    "LimitExceeded", "Limits", "ScanError", "ScanOptions", "ScanReport", "Severity", "SourceInfo", "Stats",
    "RegistryConfig", "SignaturePolicy", "list_platforms", "open_layer_file", "scan",
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
    # The rule pack (issue 4): built-in rules + LOWERDIR_RULES_DIRS + rule_dirs, unless rules=False.
    rules: bool = True
    rule_dirs: tuple[str, ...] = ()
    ruleset: RuleSet | None = None  # a loaded rule pack (overrides rule_dirs)
    reference: str = ""  # the reference the image was pulled by ("repo:tag" or "repo@sha256:...")
    signatures: SignaturePolicy | None = None  # verify Sigstore/cosign signatures (None = do not check)
    registry: RegistryConfig | None = None  # how docker:// sources are pulled (None = defaults)


def scan(source: str, *, options: ScanOptions | None = None, progress: Progress | None = None) -> ScanReport:
    """Scan an image archive or layout; see the module docstring."""
    opts = options or ScanOptions()
    if not isinstance(opts.jobs, int) or opts.jobs < 1:
        raise ValueError("ScanOptions.jobs must be an integer >= 1")
    started = time.monotonic()
    ruleset = (opts.ruleset or load_ruleset(opts.rule_dirs)) if opts.rules else None
    content_plan = plan_for(ruleset) if ruleset is not None else None
    spec = parse_spec(source)
    if spec.kind == "registry":
        return scan_reference(spec.path, opts, progress, scan)
    with open_source(spec, opts.limits) as src:
        plans = resolve(src, platform=opts.platform, all_platforms=opts.all_platforms, ref=spec.ref,
                        limits=opts.limits)
        kind = src.kind
    # Each distinct blob is scanned once, however many images or positions use it.
    slots: dict[tuple[str, int, int], int] = {}
    blobs = []
    builders = []
    used: set[int] = set()
    for plan in plans:
        positions = []
        for layer in plan.layers:
            loc = layer.location
            key = (loc.path, loc.offset, loc.size)
            if key not in slots:
                slots[key] = len(blobs)
                alg = layer.digest.split(":", 1)[0] if layer.digest else "sha256"
                blobs.append((loc, alg))
            positions.append(slots[key])
        builders.append(ImageBuilder(plan, positions, used))

    def ready(slot: int, layer_scan: LayerScan) -> None:
        for builder in builders:
            builder.offer(slot, layer_scan)

    def lower(slot: int) -> int | None:
        """Package managers of the layers below blob ``slot``, once they are all scanned (one image
        scanned in order); None when unknown. Lets the content rules skip digests nobody can use."""
        if len(builders) != 1 or slot not in builders[0].slots:
            return None
        builder = builders[0]
        position = builder.slots.index(slot)
        if position == 0 or builder.next < position:
            return None
        bits = 0
        for content in builder.contents[:position]:
            if content is None:
                return None
            bits |= content.hints
        return bits

    scans = run_layers(blobs, opts.limits, opts.jobs, progress, on_result=ready, content=content_plan,
                       lower=lower)
    images = [builder.result() for builder in builders]
    if ruleset is not None and content_plan is not None:
        for builder, image in zip(builders, images, strict=True):
            evaluate(image, builder.contents, ruleset, content_plan, reference=opts.reference)
    pull_findings(spec, images, opts.limits)  # reference.mutable-tag for an archive written by a pull
    if opts.signatures is not None:
        check_images(spec, images, opts.signatures, opts.limits)
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


def list_platforms(source: str, *, limits: Limits | None = None) -> list[dict]:
    """Every image in the source: platform, manifest and config digests, names."""
    limits = limits or DEFAULT_LIMITS
    with open_source(parse_spec(source), limits) as src:
        plans = list_images(src, limits=limits)
    return [{"platform": p.platform, "manifest_digest": p.manifest_digest, "config_digest": p.config_digest,
             "repo_tags": p.repo_tags, "layers": len(p.layers)} for p in plans]


def open_layer_file(source: str, layer_index: int, path: str, *, platform: str = "linux/amd64",
                    image_digest: str = "", limits: Limits | None = None) -> Iterator[bytes]:
    """Stream the bytes of ``path`` as stored in layer ``layer_index`` (0-based) of the image.

    The image is the one for ``platform``, or, when ``image_digest`` is given, the one with that
    manifest or config digest (a source may hold several images of one platform). The image and
    layer are resolved now (ScanError if either is missing); the returned iterator raises ScanError
    if the path is not a regular file of that layer. Deleted and shadowed files are recoverable this
    way from the layer that added them. Digests are not checked here: scan first.
    """
    limits = limits or DEFAULT_LIMITS
    spec = parse_spec(source)
    with open_source(spec, limits) as src:
        if image_digest:
            plans = [p for p in resolve(src, all_platforms=True, ref=spec.ref, limits=limits)
                     if image_digest in (p.manifest_digest, p.config_digest)]
            if not plans:
                raise ScanError(f"no image with digest {image_digest} in the source")
        else:
            plans = resolve(src, platform=platform, ref=spec.ref, limits=limits)
    plan = plans[0]
    if not 0 <= layer_index < len(plan.layers):
        raise ScanError(f"layer {layer_index} does not exist: the image has {len(plan.layers)} layers "
                        f"(0-{len(plan.layers) - 1})")
    return stream_file(plan.layers[layer_index].location, path, limits)
