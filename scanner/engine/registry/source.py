"""``scan("docker://host/repo:tag")``: pull into a temporary OCI layout archive, scan it, clean up."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model import ScanReport, SourceInfo
from .netpolicy import NetPolicy
from .options import PullOptions


@dataclass
class RegistryConfig:
    """How ``docker://`` sources are pulled: the network policy and the pull options."""

    policy: NetPolicy = field(default_factory=NetPolicy)
    pull: PullOptions = field(default_factory=PullOptions)
    keep_archive: str = ""  # also keep the pulled archive at this path
    on_pulled: Callable[[object], None] | None = None  # e.g. the CLI prints where the tag pointed
    transport: object = None  # an httpx transport (tests)


def scan_reference(reference: str, options, progress, scan_fn) -> ScanReport:
    from .fetch import pull  # httpx is imported only when something is pulled

    config: RegistryConfig = options.registry or RegistryConfig()
    pull_options = dataclasses.replace(config.pull, platform=options.platform, limits=options.limits)
    tmpdir = tempfile.mkdtemp(prefix="lowerdir-pull-")
    try:
        archive = os.path.join(tmpdir, "image.tar")
        result = pull(
            reference, archive, policy=config.policy, options=pull_options, transport=config.transport
        )
        if config.on_pulled:
            config.on_pulled(result)
        if config.keep_archive:
            shutil.copyfile(archive, config.keep_archive)
        inner = dataclasses.replace(options, hash_source=False, source_sha256=result.sha256)
        if hasattr(inner, "reference") and not inner.reference:
            inner.reference = result.reference  # the rule pack's reference.mutable-tag looks at it
        report = scan_fn(f"oci-archive:{archive}", options=inner, progress=progress)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    report.source = SourceInfo(f"docker://{result.reference}", "registry", result.sha256)
    return report
