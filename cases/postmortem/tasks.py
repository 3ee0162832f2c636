"""Celery tasks for the post-mortem: thin, an export id in; ``exports`` does the work."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from ..models import ExportRecord, ExportStatus
from . import exports

log = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def render_postmortem(export_id: int) -> None:
    attempt = exports.claim(export_id)
    if attempt is None:
        log.info("export %s is not queued; nothing to do", export_id)
        return
    record = ExportRecord.objects.select_related("case", "requested_by").get(pk=export_id)
    try:
        exports.run(record, attempt, exports.ProgressWriter(export_id, attempt))
    except exports.Superseded:
        log.warning("export %s attempt %s superseded; stopping", export_id, attempt)
    except DatabaseError:
        raise  # transient: the export goes stale and the sweeper queues it again
    except Exception:  # noqa: BLE001 - recorded on the export by exports.run
        return


@shared_task(ignore_result=True)
def sweep_stale_exports() -> int:
    """Queue again exports that no worker is moving (worker killed, message lost); give up after
    ``LOWERDIR_SCAN_MAX_ATTEMPTS``. Returns how many were queued again."""
    moved = 0
    for record in exports.stale():
        same = ExportRecord.objects.filter(pk=record.pk, attempt=record.attempt, status=record.status)
        if record.attempt >= settings.LOWERDIR_SCAN_MAX_ATTEMPTS:
            same.update(
                status=ExportStatus.FAILED,
                finished_at=timezone.now(),
                error=f"gave up after {record.attempt} attempts (worker lost each time)",
            )
            continue
        if same.update(status=ExportStatus.QUEUED, heartbeat_at=timezone.now()):
            log.warning(
                "queueing export %s again (was %s, attempt %s)", record.pk, record.status, record.attempt
            )
            render_postmortem.delay(record.pk)
            moved += 1
    return moved
