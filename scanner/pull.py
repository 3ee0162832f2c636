"""Registry pulls for the web app: settings → engine policies, and the ``pull_reference`` Celery task.

The task pulls into a temporary OCI layout archive beside the evidence store, then hands it to
:func:`cases.intake.receive_local_file` (same content-addressed store, custody and audit events, queued
scan as an upload). The custody event records where the image came from and what the tag resolved to.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile

from celery import shared_task
from django.conf import settings

from .engine.model import ScanError
from .engine.registry.netpolicy import NetPolicy
from .engine.registry.options import Credentials, PullOptions
from .engine.signatures import SignaturePolicy

log = logging.getLogger(__name__)


def net_policy() -> NetPolicy:
    return NetPolicy.from_lists(settings.LOWERDIR_REGISTRY_ALLOWLIST, settings.LOWERDIR_REGISTRY_INSECURE)


def registry_credentials() -> dict[str, Credentials]:
    path = settings.LOWERDIR_REGISTRY_CREDENTIALS_FILE
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return {host: Credentials(str(c["username"]), str(c["password"])) for host, c in doc.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ScanError("LOWERDIR_REGISTRY_CREDENTIALS_FILE is unreadable or not "
                        '{"host": {"username": ..., "password": ...}}') from None


def signature_policy() -> SignaturePolicy:
    keys = []
    if settings.LOWERDIR_COSIGN_PUBLIC_KEY:
        try:
            with open(settings.LOWERDIR_COSIGN_PUBLIC_KEY, "rb") as fh:
                keys.append(fh.read(64 * 1024))
        except OSError as exc:
            raise ScanError(f"cannot read LOWERDIR_COSIGN_PUBLIC_KEY: {exc.strerror or exc}") from None
    return SignaturePolicy(
        identity=settings.LOWERDIR_SIGNATURE_IDENTITY,
        issuer=settings.LOWERDIR_SIGNATURE_ISSUER,
        public_keys=keys,
        trusted_root=settings.LOWERDIR_SIGSTORE_TRUSTED_ROOT,
        require=settings.LOWERDIR_REQUIRE_SIGNATURE,
    )


def check_reference(reference: str) -> str:
    """Validate a reference before queueing (syntax and the host policy); the normalised reference."""
    from .engine.registry.reference import parse_reference, split_host_port

    ref = parse_reference(reference)
    host, port = split_host_port(ref.api_registry)
    policy = net_policy()
    scheme = "https"
    if policy.is_insecure(host, port or 443) or policy.is_insecure(host, port or 80):
        scheme = "http"
    policy.check(scheme, host, port or (443 if scheme == "https" else 80))
    return str(ref)


def pull_to_evidence(*, case, reference: str, user, description: str = ""):
    """Pull now (in a worker) and keep the archive as evidence; returns the Evidence."""
    from cases.intake import receive_local_file

    from .engine.registry.fetch import pull

    options = PullOptions(credentials=registry_credentials(),
                          max_total_bytes=settings.LOWERDIR_MAX_UPLOAD_BYTES)
    tmpdir = tempfile.mkdtemp(prefix="pull-", dir=settings.FILE_UPLOAD_TEMP_DIR)
    path = os.path.join(tmpdir, "image.tar")
    try:
        result = pull(reference, path, policy=net_policy(), options=options)
        name = f"{result.registry}/{result.repository}@{result.resolved_digest}.oci.tar"
        detail = {
            "how": "pulled",
            "pulled": result.custody_text(),
            "reference": result.reference,
            "registry": result.registry,
            "repository": result.repository,
            "tag": result.tag,
            "resolved_digest": result.resolved_digest,
            "manifest_digest": result.manifest_digest,
            "platform": result.platform,
            "platforms": result.platforms,
            "pulled_at": result.pulled_at,
            "signature_artifacts": len(result.signature_artifacts),
            "mismatches": result.mismatches,
        }
        return receive_local_file(case=case, path=path, sha256=result.sha256, size=result.size, user=user,
                                  original_name=name[:255], custody_detail=detail,
                                  description=description or result.custody_text())
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@shared_task(acks_late=True, ignore_result=True)
def pull_reference(case_id: int, reference: str, user_id: int, description: str = "") -> int | None:
    """Pull ``reference`` into the case's evidence; the evidence id, or None (the failure is audited)."""
    from django.contrib.auth import get_user_model

    from cases.models import AuditEvent, Case

    case = Case.objects.get(pk=case_id)
    user = get_user_model().objects.get(pk=user_id)
    try:
        evidence = pull_to_evidence(case=case, reference=reference, user=user, description=description)
    except ScanError as exc:
        log.warning("pull of %s for case %s failed: %s", reference, case.key, exc)
        AuditEvent.record(case=case, actor=user, action="evidence.pull_failed",
                          data={"reference": reference, "error": str(exc)[:1000]})
        return None
    log.info("pulled %s into case %s as evidence %s", reference, case.key, evidence.pk)
    return evidence.pk
