"""Evidence intake: content-addressed storage, the custody record, and queueing the scan."""

from __future__ import annotations

import logging
import re

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from .models import AuditEvent, Case, CustodyAction, CustodyEvent, Evidence

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def storage_key(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError("not a SHA-256 hex digest")
    return f"evidence/sha256/{sha256[:2]}/{sha256}"


def store_blob(uploaded: UploadedFile, sha256: str) -> tuple[str, bool]:
    """Put the bytes at their content address, once. Returns (key, created_now).

    The same bytes uploaded twice reuse the stored blob. Storage backends rename on a name clash, so
    a concurrent upload of the same bytes that lost the race deletes its own copy.
    """
    key = storage_key(sha256)
    if default_storage.exists(key):
        return key, False
    uploaded.seek(0)
    saved = default_storage.save(key, uploaded)
    if saved != key:
        default_storage.delete(saved)
        return key, False
    return key, True


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def receive_evidence(
    *, case: Case, uploaded: UploadedFile, user, address: str = "", description: str = "",
    custody_detail: dict | None = None, audit_action: str = "evidence.received",
) -> Evidence:
    """Keep an uploaded file as evidence and queue its scan (sent only once the rows are committed)."""
    from scanner.models import ScanRun  # the scanner app depends on cases, not the other way round

    sha256 = getattr(uploaded, "sha256", "")
    if not sha256:
        raise ValueError("upload was not received through the hashing upload handler")
    key, created = store_blob(uploaded, sha256)
    try:
        with transaction.atomic():
            evidence = Evidence.objects.create(
                case=case,
                original_name=(uploaded.name or "upload")[:255],
                sha256=sha256,
                size=uploaded.size,
                storage_key=key,
                description=description,
                uploaded_by=user,
            )
            CustodyEvent.objects.create(
                evidence=evidence,
                action=CustodyAction.RECEIVED,
                actor=user,
                detail={
                    "sha256": sha256,
                    "size": uploaded.size,
                    "client_address": address,
                    "original_name": evidence.original_name,
                    "stored_as": key,
                    "new_blob": created,
                    **(custody_detail or {}),
                },
            )
            AuditEvent.record(
                case=case,
                actor=user,
                action=audit_action,
                data={"evidence": evidence.pk, "sha256": sha256, "size": uploaded.size},
            )
            ScanRun.enqueue(evidence)
    except Exception:
        if created and not Evidence.objects.filter(sha256=sha256).exists():
            default_storage.delete(key)  # no row refers to the blob we just wrote: leave nothing behind
        raise
    log.info(
        "evidence received case=%s evidence=%s sha256=%s size=%d",
        case.key,
        evidence.pk,
        sha256,
        uploaded.size,
    )
    return evidence


def receive_local_file(
    *, case: Case, path, sha256: str, size: int, user, original_name: str, custody_detail: dict,
    description: str = "", audit_action: str = "evidence.pulled",
) -> Evidence:
    """Keep a file the server produced itself (a registry pull) as evidence, like an upload: the same
    content-addressed store, custody event, audit event and queued scan. ``sha256`` and ``size`` were
    computed while the file was written; the file is re-hashed here before it is stored."""
    import hashlib

    from django.core.files import File

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != sha256:
        raise ValueError("the pulled archive changed after it was written")
    with open(path, "rb") as fh:
        wrapped = File(fh, name=original_name)
        wrapped.size = size
        wrapped.sha256 = sha256
        return receive_evidence(case=case, uploaded=wrapped, user=user, description=description,
                                custody_detail=custody_detail, audit_action=audit_action)
