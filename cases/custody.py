"""Re-verification of stored evidence: re-hash the blob and put the result on the custody log.

Used by the evidence tab's **Re-verify** button and by ``POST /api/evidence/{id}/verify/``.
"""

from __future__ import annotations

import hashlib
import time

from django.core.files.storage import default_storage

from .models import AuditEvent, CustodyAction, CustodyEvent, Evidence


def verify_evidence(evidence: Evidence, user) -> CustodyEvent:
    """Re-hash the stored bytes; record a ``verified`` custody event (match or mismatch) and an audit
    event. A blob that cannot be read is a mismatch with the reason in ``detail["error"]``."""
    digest, size, started = hashlib.sha256(), 0, time.monotonic()
    error = ""
    try:
        with default_storage.open(evidence.storage_key, "rb") as blob:
            while chunk := blob.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        error = f"could not read the stored blob: {exc.__class__.__name__}"
    actual = digest.hexdigest() if not error else ""
    match = not error and actual == evidence.sha256 and size == evidence.size
    detail = {
        "expected": evidence.sha256,
        "actual": actual,
        "size": size,
        "match": match,
        "seconds": round(time.monotonic() - started, 3),
    }
    if error:
        detail["error"] = error
    event = CustodyEvent.objects.create(
        evidence=evidence, action=CustodyAction.VERIFIED, actor=user, detail=detail
    )
    AuditEvent.record(
        case=evidence.case,
        actor=user,
        action="evidence.verified",
        data={"evidence": evidence.pk, "match": match, "actual": actual},
    )
    return event
