"""From an image plan and its layer scans to an ImageResult: verify, place and merge layers in order.

Layer scans may arrive in any order (worker processes finish when they finish); each layer is
processed as soon as every layer below it is in, so with ``jobs > 1`` most of the merge overlaps the
scanning of the last layers instead of following it.
"""

from __future__ import annotations

import copy

from .images import ImagePlan
from .layers import LayerScan
from .model import FileEntry, Finding, ImageResult, LayerResult, Severity
from .rules.content import LayerContent
from .tree import MergedTree


def media_type(compression: str) -> str:
    base = "application/vnd.docker.image.rootfs.diff.tar"
    return base + (".gzip" if compression == "gzip" else "+zstd" if compression == "zstd" else "")


def _mismatch(index: int, digest: str, what: str, expected: str, actual: str) -> Finding:
    return Finding(
        rule_id="integrity.digest-mismatch", severity=Severity.CRITICAL,
        title=f"layer {index} {what} does not match its digest",
        detail=f"layer {index} {what}: expected {expected}, actual {actual}. The layer was tampered "
               "with or is corrupt; its content is untrusted.",
        layer_index=index, layer_digest=digest, sha256=actual.split(":", 1)[-1],
    )


class ImageBuilder:
    def __init__(self, plan: ImagePlan, slots: list[int], used: set[int]) -> None:
        self.plan = plan
        self.slots = slots  # blob slot of each layer position
        self.used = used  # slots whose entries already belong to a layer (shared between builders)
        self.pending: dict[int, LayerScan] = {}
        self.next = 0
        self.tree = MergedTree()
        self.findings: list[Finding] = list(plan.findings)
        self.layers: list[LayerResult] = []
        self.files: list[FileEntry] = []
        self.contents: list[LayerContent | None] = []  # per position: what the content rules saw

    def offer(self, slot: int, scan: LayerScan) -> None:
        """A blob's scan is ready: process every layer now unblocked."""
        for position, wanted in enumerate(self.slots):
            if wanted == slot:
                self.pending[position] = scan
        while self.next in self.pending:
            self._apply(self.next, self.pending.pop(self.next))
            self.next += 1

    def _apply(self, position: int, sc: LayerScan) -> None:
        lp = self.plan.layers[position]
        slot = self.slots[position]
        entries = sc.entries if slot not in self.used else [copy.copy(e) for e in sc.entries]
        self.used.add(slot)
        for entry in entries:
            entry.layer_index = lp.index
        digest = lp.digest or sc.blob_digest
        trusted = sc.complete
        if lp.digest and lp.digest != sc.blob_digest:
            trusted = False
            self.findings.append(_mismatch(lp.index, digest, "blob", lp.digest, sc.blob_digest))
        if lp.diff_id and sc.diff_id and lp.diff_id != sc.diff_id:
            trusted = False
            self.findings.append(_mismatch(lp.index, digest, "uncompressed content (diff_id)", lp.diff_id,
                                           sc.diff_id))
        if not lp.diff_id:
            trusted = False  # nothing in the config to verify the content against
        for rule, severity, title, detail, path, sha in sc.issues:
            self.findings.append(Finding(rule, severity, f"layer {lp.index}: {title}", detail, lp.index,
                                         digest, path, sha))
        counts = self.tree.apply(lp.index, entries)
        self.layers.append(LayerResult(
            index=lp.index, digest=digest, diff_id=lp.diff_id or sc.diff_id,
            media_type=lp.media_type or media_type(sc.compression), size=lp.size,
            uncompressed_size=sc.uncompressed_size, created_by=lp.created_by,
            empty_history=list(lp.empty_history), files_added=counts.added, files_modified=counts.modified,
            files_deleted=counts.deleted, trusted=trusted, actual_digest=sc.blob_digest,
            actual_diff_id=sc.diff_id, compression=sc.compression, complete=sc.complete,
        ))
        self.files.extend(entries)
        self.contents.append(sc.content)

    def result(self) -> ImageResult:
        if self.next != len(self.slots):
            raise RuntimeError("image assembled before all of its layers were scanned")
        plan = self.plan
        cfg = plan.config.get("config")
        user = cfg.get("User") if isinstance(cfg, dict) else ""
        created = plan.config.get("created")
        return ImageResult(
            manifest_digest=plan.manifest_digest, config_digest=plan.config_digest,
            repo_tags=plan.repo_tags, platform=plan.platform, user=user if isinstance(user, str) else "",
            created=created if isinstance(created, str) else "", config=plan.config, layers=self.layers,
            files=self.files, graveyard=self.tree.graveyard, findings=self.findings,
            trailing_history=plan.trailing_history,
        )
