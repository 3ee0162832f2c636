"""Celery tasks: thin. Ids in; the engine does the work; the database records every state change."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from . import engine
from .engine.model import ScanError
from .models import ScanRun, ScanStatus
from .persist import store_report

log = logging.getLogger(__name__)


class Superseded(Exception):
    """The sweeper handed this run to another attempt; this worker must stop writing to it."""


class ProgressWriter:
    """Engine progress callback: records progress and a heartbeat at most once a second."""

    def __init__(self, run_id: int, attempt: int, interval: float = 1.0) -> None:
        self.run_id, self.attempt, self.interval = run_id, attempt, interval
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        fraction = min(done / total, 1.0) if total else 0.0
        # Scanning is most of the work; the last 5% is storing the results.
        self.write(progress=round(fraction * 0.95, 4))

    def write(self, **fields) -> None:
        updated = ScanRun.objects.filter(
            pk=self.run_id, attempt=self.attempt, status=ScanStatus.RUNNING
        ).update(heartbeat_at=timezone.now(), **fields)
        if not updated:
            raise Superseded(f"scan {self.run_id} attempt {self.attempt} was superseded")


def claim(run_id: int) -> int | None:
    """Move a queued run to running and return this attempt's number; None if it is not ours to run."""
    now = timezone.now()
    claimed = ScanRun.objects.filter(pk=run_id, status=ScanStatus.QUEUED).update(
        status=ScanStatus.RUNNING,
        attempt=F("attempt") + 1,
        started_at=now,
        heartbeat_at=now,
        progress=0.0,
        error="",
        engine_version=engine.__version__,
    )
    if not claimed:
        return None
    return ScanRun.objects.values_list("attempt", flat=True).get(pk=run_id)


@contextlib.contextmanager
def local_path(storage_key: str) -> Iterator[Path]:
    """A path the engine can seek in: the stored file itself, or a temporary copy for remote storage."""
    try:
        yield Path(default_storage.path(storage_key))
        return
    except NotImplementedError:
        pass
    with (
        default_storage.open(storage_key, "rb") as source,
        tempfile.NamedTemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="scan-") as copy,
    ):
        shutil.copyfileobj(source, copy, 1024 * 1024)
        copy.flush()
        yield Path(copy.name)


def finish(run_id: int, attempt: int, status: str, error: str = "", **fields) -> None:
    ScanRun.objects.filter(pk=run_id, attempt=attempt, status=ScanStatus.RUNNING).update(
        status=status, error=error, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields
    )


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def scan_evidence(run_id: int) -> None:
    attempt = claim(run_id)
    if attempt is None:
        log.info("scan %s is not queued; nothing to do", run_id)
        return
    run = ScanRun.objects.select_related("evidence").get(pk=run_id)
    progress = ProgressWriter(run_id, attempt)
    options = engine.ScanOptions(jobs=settings.LOWERDIR_SCAN_JOBS, source_sha256=run.evidence.sha256)
    try:
        from .pull import signature_policy  # signature.* findings for every scan (docs/registry.md)

        options.signatures = signature_policy()
        with local_path(run.evidence.storage_key) as path:
            report = engine.scan(str(path), options=options, progress=progress)
        progress.write(progress=0.95)
        store_report(run, report)
    except Superseded:
        log.warning("scan %s attempt %s superseded; stopping", run_id, attempt)
        return
    except ScanError as error:
        finish(run_id, attempt, ScanStatus.FAILED, error=str(error))
        return
    except SoftTimeLimitExceeded:
        finish(run_id, attempt, ScanStatus.FAILED, error="the scan exceeded its time limit")
        return
    except DatabaseError:
        raise  # transient: the run stays "running", goes stale, and the sweeper retries it
    except Exception as error:  # a bug must not leave the run hanging: fail it, readably
        log.exception("scan %s crashed", run_id)
        finish(
            run_id,
            attempt,
            ScanStatus.FAILED,
            error=f"internal error: {type(error).__name__}: {error}"[:2000],
        )
        return
    stats = {
        "layers": report.stats.layers,
        "files": report.stats.files,
        "bytes_read": report.stats.bytes_read,
        "seconds": report.stats.seconds,
    }
    finish(run_id, attempt, ScanStatus.SUCCEEDED, progress=1.0, stats=stats)
    log.info("scan %s succeeded: %s", run_id, stats)


@shared_task(ignore_result=True)
def sweep_stale_scans() -> int:
    """Re-queue runs that no worker is moving; give up on those that keep dying. Returns how many moved."""
    moved = 0
    for run in ScanRun.stale():
        if run.attempt >= settings.LOWERDIR_SCAN_MAX_ATTEMPTS:
            ScanRun.objects.filter(pk=run.pk, attempt=run.attempt, status=run.status).update(
                status=ScanStatus.FAILED,
                finished_at=timezone.now(),
                error=f"gave up after {run.attempt} attempts (worker lost each time)",
            )
            continue
        requeued = ScanRun.objects.filter(pk=run.pk, attempt=run.attempt, status=run.status).update(
            status=ScanStatus.QUEUED, queued_at=timezone.now(), heartbeat_at=None
        )
        if requeued:
            log.warning("re-queueing scan %s (was %s, attempt %s)", run.pk, run.status, run.attempt)
            scan_evidence.delay(run.pk)
            moved += 1
    return moved


# Registered with the worker (autodiscovery imports tasks modules only).
from .pull import pull_reference  # noqa: E402, F401
