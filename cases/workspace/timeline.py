"""The case timeline: one chronological list of what happened.

Stored entries (``TimelineEvent``: status changes, triage decisions, checklist items done, manual entries,
template headings) are merged with entries derived from their source rows when the timeline is read:
image build history (each step's ``created`` time and command), custody events (evidence received,
verified, accessed, exported) and scans (started, finished). Derived entries are never copied, so they
cannot drift from the evidence they describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Prefetch

from scanner.models import Finding, ScanRun

from ..models import Case, CustodyEvent, Evidence, TimelineEvent, TimelineKind
from .imageinfo import history
from .queries import case_images

KINDS = [(kind.value, kind.label) for kind in TimelineKind]


@dataclass
class Entry:
    at: datetime
    kind: str
    title: str
    body: str = ""  # Markdown (stored entries) or plain text (derived ones)
    markdown: bool = False
    author: str = ""
    detail: str = ""
    event: TimelineEvent | None = None  # stored entries only
    findings: list = field(default_factory=list)
    evidence: list = field(default_factory=list)
    order: int = 0

    @property
    def kind_label(self) -> str:
        return TimelineKind(self.kind).label if self.kind in TimelineKind.values else self.kind


def stored_entries(case: Case, kinds: set[str] | None):
    events = (
        TimelineEvent.objects.filter(case=case)
        .select_related("author")
        .prefetch_related(
            Prefetch("findings", queryset=Finding.objects.only("pk", "title", "severity")),
            Prefetch("evidence", queryset=Evidence.objects.only("pk", "original_name", "sha256")),
        )
    )
    if kinds:
        events = events.filter(kind__in=kinds)
    for event in events:
        findings = list(event.findings.all())
        yield Entry(
            at=event.occurred_at,
            kind=event.kind,
            title=event.title,
            body=event.body,
            markdown=True,
            author=event.author.username if event.author else "",
            event=event,
            findings=findings[:20],
            evidence=list(event.evidence.all()),
            detail=f"{len(findings):,} findings" if len(findings) > 20 else "",
            order=2,
        )


def custody_entries(case: Case):
    events = CustodyEvent.objects.filter(evidence__case=case).select_related("evidence", "actor")
    for event in events:
        detail = event.detail or {}
        title = f"Evidence {event.get_action_display().lower()}: {event.evidence.original_name}"
        body = ""
        if event.action == "verified":
            body = "hash matches" if detail.get("match") else "HASH MISMATCH"
        elif event.action == "accessed" and detail.get("path"):
            body = f"recovered {detail.get('path')} from layer {detail.get('layer')}"
        yield Entry(
            at=event.at,
            kind=TimelineKind.EVIDENCE,
            title=title,
            body=body,
            author=event.actor.username if event.actor else "",
            evidence=[event.evidence],
            order=1,
            detail=f"SHA-256 {event.evidence.sha256}",
        )


def scan_entries(case: Case):
    runs = ScanRun.objects.filter(evidence__case=case).select_related("evidence")
    for run in runs:
        name = run.evidence.original_name
        if run.started_at:
            yield Entry(
                at=run.started_at,
                kind=TimelineKind.SCAN,
                title=f"Scan started: {name}",
                evidence=[run.evidence],
                detail=f"attempt {run.attempt}",
                order=1,
            )
        if run.finished_at:
            outcome = "finished" if run.status == "succeeded" else "failed"
            yield Entry(
                at=run.finished_at,
                kind=TimelineKind.SCAN,
                title=f"Scan {outcome}: {name}",
                body=run.error,
                evidence=[run.evidence],
                order=1,
                detail=", ".join(f"{k} {v}" for k, v in (run.stats or {}).items()),
            )


def history_entries(case: Case):
    seen: set[str] = set()
    for image in case_images(case):
        if image.config_digest in seen:
            continue
        seen.add(image.config_digest)
        label = (image.repo_tags or [image.manifest_digest or image.config_digest])[0]
        for n, step in enumerate(history(image)):
            if step.created is None:
                continue
            where = f"layer {step.layer_index}" if step.layer_index is not None else "no layer (metadata)"
            yield Entry(
                at=step.created,
                kind=TimelineKind.HISTORY,
                title=step.created_by or "(no command)",
                body=step.comment,
                detail=f"{label} · {where}",
                order=0 + n * 1e-6,
                evidence=[image.evidence],
            )


def build(case: Case, kinds: set[str] | None = None) -> list[Entry]:
    """Every entry of the timeline, oldest first, optionally only some kinds."""
    entries: list[Entry] = list(stored_entries(case, kinds))
    if not kinds or TimelineKind.EVIDENCE in kinds:
        entries.extend(custody_entries(case))
    if not kinds or TimelineKind.SCAN in kinds:
        entries.extend(scan_entries(case))
    if not kinds or TimelineKind.HISTORY in kinds:
        entries.extend(history_entries(case))
    entries.sort(key=lambda e: (e.at, e.order))
    return entries
