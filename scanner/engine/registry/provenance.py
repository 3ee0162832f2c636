"""Findings from how a pulled image was named: ``reference.mutable-tag`` with what the tag resolved to.

``pull`` writes its provenance into the archive's ``index.json`` annotations (``dev.lowerdir.pull.*``),
so the finding comes out whether the archive is scanned right after the pull (CLI ``docker://``) or
later from the evidence store (the web app). If the rule pack already flagged the tag, its finding gets
the resolved digest appended instead of a second finding.
"""

from __future__ import annotations

import json

from ..limits import Limits
from ..model import Finding, ImageResult, ScanError, Severity
from ..sources import SourceSpec, open_source

PREFIX = "dev.lowerdir.pull."


def read_provenance(spec: SourceSpec | str, limits: Limits) -> dict[str, str]:
    """The pull annotations of a source's index.json ({} when it was not written by ``pull``)."""
    try:
        with open_source(spec, limits) as src:
            if not src.exists("index.json"):
                return {}
            doc = json.loads(src.read(src.locate("index.json", "index.json"), "index.json"))
    except (ScanError, ValueError, RecursionError):
        return {}
    ann = doc.get("annotations") if isinstance(doc, dict) else None
    if not isinstance(ann, dict):
        return {}
    return {k[len(PREFIX) :]: v for k, v in ann.items() if k.startswith(PREFIX) and isinstance(v, str)}


def pull_findings(spec: SourceSpec | str, images: list[ImageResult], limits: Limits) -> None:
    """Add (or complete) ``reference.mutable-tag`` for an image pulled by tag. In place."""
    prov = read_provenance(spec, limits)
    tag = prov.get("tag", "")
    if not prov or not tag or prov.get("requested-digest"):
        return
    name = f"{prov.get('registry', '')}/{prov.get('repository', '')}"
    resolved = prov.get("digest", "")
    manifest = prov.get("manifest-digest", resolved)
    note = (
        f"pulled from {name} by tag {tag!r} at {prov.get('time', '?')}; the tag resolved to {resolved}"
        + (f" (manifest {manifest})" if manifest != resolved else "")
        + f". A tag can be moved to other content at any time: pin {name}@{resolved}."
    )
    for image in images:
        if prov.get("manifest-digest") and image.manifest_digest != prov["manifest-digest"]:
            continue
        existing = [f for f in image.findings if f.rule_id == "reference.mutable-tag"]
        if existing:
            for finding in existing:
                if resolved not in finding.detail:
                    finding.detail = f"{finding.detail} {note}".strip()
            continue
        image.findings.append(
            Finding(
                rule_id="reference.mutable-tag",
                severity=Severity.MEDIUM if tag == "latest" else Severity.LOW,
                title=f"image known only by a tag: {name}:{tag}",
                detail=note,
            )
        )
