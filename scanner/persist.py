"""Store an engine report as rows, in bulk, in one transaction (a retried scan never duplicates rows)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from django.db import transaction

from .engine.model import FileEntry, ImageResult, ScanReport
from .models import FileRecord, Finding, Image, Layer, ScanRun

BATCH = 5000


def _batches(items: Iterable, size: int = BATCH) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def store_report(run: ScanRun, report: ScanReport) -> None:
    """Replace whatever the run held with the report's images, layers, files and findings."""
    with transaction.atomic():
        Image.objects.filter(scan=run).delete()
        Finding.objects.filter(scan=run).delete()
        for result in report.images:
            _store_image(run, result)


def _store_image(run: ScanRun, result: ImageResult) -> None:
    image = Image.objects.create(
        scan=run,
        manifest_digest=result.manifest_digest,
        config_digest=result.config_digest,
        repo_tags=result.repo_tags,
        platform=result.platform,
        user=result.user,
        created=result.created,
        config=result.config,
    )
    layers = Layer.objects.bulk_create(
        Layer(
            image=image,
            index=layer.index,
            digest=layer.digest,
            diff_id=layer.diff_id,
            media_type=layer.media_type,
            size=layer.size,
            uncompressed_size=layer.uncompressed_size,
            created_by=layer.created_by,
            empty_history=layer.empty_history,
            files_added=layer.files_added,
            files_modified=layer.files_modified,
            files_deleted=layer.files_deleted,
            trusted=layer.trusted,
        )
        for layer in result.layers
    )
    by_index = {layer.index: layer for layer in layers}
    hidden = {(grave.path, grave.added_layer): grave for grave in result.graveyard}
    records = (_file_record(image, by_index[entry.layer_index], entry, hidden) for entry in result.files)
    for batch in _batches(records):
        FileRecord.objects.bulk_create(batch)
    findings = (
        Finding(
            case_id=run.evidence.case_id,
            scan=run,
            image=image,
            layer=by_index.get(finding.layer_index) if finding.layer_index is not None else None,
            rule_id=finding.rule_id,
            severity=str(finding.severity),
            title=finding.title[:300],
            detail=finding.detail,
            path=finding.path,
            sha256=finding.sha256,
            fingerprint=finding.fingerprint,
        )
        for finding in result.findings
    )
    for batch in _batches(findings):
        Finding.objects.bulk_create(batch, ignore_conflicts=True)


def _file_record(image: Image, layer: Layer, entry: FileEntry, hidden: dict) -> FileRecord:
    grave = hidden.get((entry.path, entry.layer_index))
    return FileRecord(
        image=image,
        layer=layer,
        path=entry.path,
        type=str(entry.type),
        mode=entry.mode,
        uid=entry.uid,
        gid=entry.gid,
        size=entry.size,
        mtime=entry.mtime,
        link_target=entry.link_target,
        sha256=entry.sha256,
        flags=" ".join(sorted(entry.flags)),
        change=str(entry.change),
        visible=entry.visible,
        hidden_by=grave.hidden_layer if grave else None,
        hidden_how=grave.how if grave else "",
    )
