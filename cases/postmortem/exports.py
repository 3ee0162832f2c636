"""Exports as records: render (in the request or in a Celery task), keep the bytes, hash them, and write
the custody and audit trail.

    record = request_export(case, user, "pdf", tlp="amber", classification="Confidential")
    if runs_inline(case, "pdf"):
        data = run_inline(record)          # rendered now; record is done
    else:
        queue(record)                      # a worker renders it; record.progress moves

Finishing an export (:func:`finish`) is one transaction: the record gets the SHA-256, size and page count
of the exact bytes stored under ``exports/<case>/<sha256>.<format>``, each evidence item the document
covers gets a ``CustodyEvent(action="exported")`` naming that hash, and the audit log gets
``postmortem.exported``. ``attempt`` is a fencing token as for scans: a worker presumed dead cannot
finish an export that was handed to another attempt.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import (
    AuditEvent,
    Case,
    CustodyAction,
    CustodyEvent,
    Evidence,
    ExportFormat,
    ExportRecord,
    ExportStatus,
)
from . import context, markdown, render

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ExportFormat.PDF: "application/pdf",
    ExportFormat.MARKDOWN: "text/markdown; charset=utf-8",
    ExportFormat.JSON: "application/json",
}


class Superseded(Exception):
    """The export was handed to another attempt; this one must stop writing."""


def default_tlp() -> str:
    return context.normalise_tlp(getattr(settings, "LOWERDIR_POSTMORTEM_TLP", "amber"))


def default_classification() -> str:
    return getattr(settings, "LOWERDIR_POSTMORTEM_CLASSIFICATION", "Confidential")


def inline_max() -> int:
    return int(getattr(settings, "LOWERDIR_POSTMORTEM_INLINE_MAX", 500))


def runs_inline(case: Case, fmt: str) -> bool:
    """Markdown and JSON always render in the request (they cost little); a PDF does while the case has at
    most ``LOWERDIR_POSTMORTEM_INLINE_MAX`` rows (findings + timeline entries + custody events)."""
    return fmt != ExportFormat.PDF or context.size_of(case) <= inline_max()


def request_export(
    case: Case, user, fmt: str, *, tlp: str = "", classification: str | None = None
) -> ExportRecord:
    if fmt not in ExportFormat.values:
        raise ValueError(f"unknown export format {fmt!r}")
    return ExportRecord.objects.create(
        case=case,
        format=fmt,
        tlp=context.normalise_tlp(tlp, default_tlp()),
        classification=(default_classification() if classification is None else classification).strip()[:100],
        requested_by=user,
    )


def claim(export_id: int) -> int | None:
    """queued -> running, attempt + 1, in one conditional UPDATE; the new attempt, or None if not ours."""
    now = timezone.now()
    claimed = ExportRecord.objects.filter(pk=export_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, attempt=F("attempt") + 1, started_at=now, heartbeat_at=now, progress=0.0
    )
    if not claimed:
        return None
    return ExportRecord.objects.values_list("attempt", flat=True).get(pk=export_id)


class ProgressWriter:
    """Progress and a heartbeat on the record, at most once a second (and only while it is ours)."""

    def __init__(self, export_id: int, attempt: int, interval: float = 1.0) -> None:
        self.export_id, self.attempt, self.interval = export_id, attempt, interval
        self.last = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        updated = ExportRecord.objects.filter(
            pk=self.export_id, attempt=self.attempt, status=ExportStatus.RUNNING
        ).update(progress=round(min(max(fraction, 0.0), 0.99), 3), heartbeat_at=timezone.now())
        if not updated:
            raise Superseded(f"export {self.export_id} attempt {self.attempt} was superseded")


def produce(record: ExportRecord, progress=None) -> tuple[bytes, int | None, list[str]]:
    """Render ``record``'s document: (bytes, page count for a PDF, SHA-256s of the evidence covered)."""
    progress = progress or (lambda _fraction: None)
    pm = context.build(
        record.case,
        user=record.requested_by,
        tlp=record.tlp,
        classification=record.classification,
        export_id=record.pk,
    )
    progress(0.15)
    if record.format == ExportFormat.PDF:
        result = render.pdf(pm, progress=progress)
        return result.data, result.pages, pm.evidence_digests
    if record.format == ExportFormat.MARKDOWN:
        return markdown.render(pm).encode(), None, pm.evidence_digests
    return render.json_bytes(pm), None, pm.evidence_digests


def finish(
    record: ExportRecord, attempt: int, data: bytes, pages: int | None, evidence: list[str]
) -> ExportRecord:
    """Store the bytes, then mark the record done and write custody and audit, in one transaction."""
    digest = hashlib.sha256(data).hexdigest()
    key = f"exports/{record.case_id}/{digest}.{record.format}"
    if not default_storage.exists(key):
        saved = default_storage.save(key, ContentFile(data))
        if saved != key:  # another export wrote the same bytes at the same moment: keep one copy
            default_storage.delete(saved)
    now = timezone.now()
    with transaction.atomic():
        updated = ExportRecord.objects.filter(
            pk=record.pk, attempt=attempt, status=ExportStatus.RUNNING
        ).update(
            status=ExportStatus.DONE,
            progress=1.0,
            sha256=digest,
            size=len(data),
            pages=pages,
            storage_key=key,
            evidence=evidence,
            finished_at=now,
            heartbeat_at=now,
            error="",
        )
        if not updated:
            raise Superseded(f"export {record.pk} attempt {attempt} was superseded")
        detail = {
            "export": record.pk,
            "format": record.format,
            "sha256": digest,
            "size": len(data),
            "tlp": context.TLP[record.tlp][0] if record.tlp in context.TLP else record.tlp,
        }
        for item in Evidence.objects.filter(case_id=record.case_id, sha256__in=evidence).order_by("pk"):
            CustodyEvent.objects.create(
                evidence=item, action=CustodyAction.EXPORTED, actor=record.requested_by, at=now, detail=detail
            )
        AuditEvent.record(
            case=record.case,
            actor=record.requested_by,
            action="postmortem.exported",
            data={**detail, "pages": pages, "classification": record.classification, "evidence": evidence},
        )
    record.refresh_from_db()
    return record


def fail(record: ExportRecord, attempt: int, error: str) -> None:
    ExportRecord.objects.filter(pk=record.pk, attempt=attempt, status=ExportStatus.RUNNING).update(
        status=ExportStatus.FAILED,
        error=error[:2000],
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    AuditEvent.record(
        case=record.case,
        actor=record.requested_by,
        action="postmortem.failed",
        data={"export": record.pk, "format": record.format, "error": error[:500]},
    )


def run(record: ExportRecord, attempt: int, progress=None) -> ExportRecord:
    """Render and finish a claimed export; a failure is recorded on it (and re-raised)."""
    try:
        data, pages, evidence = produce(record, progress)
        return finish(record, attempt, data, pages, evidence)
    except Superseded:
        raise
    except Exception as error:
        log.exception("post-mortem export %s failed", record.pk)
        fail(record, attempt, f"{type(error).__name__}: {error}")
        raise


def run_inline(record: ExportRecord) -> tuple[ExportRecord, bytes]:
    """Claim and render ``record`` in this process (the request). Returns the finished record and bytes."""
    attempt = claim(record.pk)
    if attempt is None:
        raise Superseded(f"export {record.pk} is not queued")
    record.refresh_from_db()
    record = run(record, attempt)
    return record, read(record)


def queue(record: ExportRecord) -> None:
    """Wake a worker once the surrounding transaction commits."""
    from .tasks import render_postmortem

    export_id = record.pk
    transaction.on_commit(lambda: render_postmortem.delay(export_id))


def describe(record: ExportRecord) -> dict:
    """An export as JSON (the export page for API clients; the REST API can reuse it)."""
    from django.urls import reverse

    args = [record.case_id, record.pk]
    done = record.status == ExportStatus.DONE
    return {
        "id": record.pk,
        "case": record.case_id,
        "format": record.format,
        "status": record.status,
        "progress": round(record.progress, 3),
        "tlp": context.TLP.get(record.tlp, (record.tlp, ""))[0],
        "classification": record.classification,
        "sha256": record.sha256 or None,
        "size": record.size,
        "pages": record.pages,
        "evidence_sha256": record.evidence,
        "requested_by": record.requested_by.username,
        "requested_at": record.requested_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "error": record.error or None,
        "url": reverse("cases:export", args=args),
        "download": reverse("cases:export_download", args=args) if done else None,
    }


def read(record: ExportRecord) -> bytes:
    with default_storage.open(record.storage_key, "rb") as handle:
        return handle.read()


def stale():
    """Exports no worker is moving: queued and never picked up, or running without a recent heartbeat."""
    cutoff = timezone.now() - timedelta(seconds=settings.LOWERDIR_SCAN_STALE_AFTER)
    waiting = Q(heartbeat_at__isnull=True, requested_at__lt=cutoff) | Q(heartbeat_at__lt=cutoff)
    return ExportRecord.objects.filter(
        (Q(status=ExportStatus.QUEUED) & waiting) | Q(status=ExportStatus.RUNNING, heartbeat_at__lt=cutoff)
    )
