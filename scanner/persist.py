"""Store an engine report as rows, in bulk, in one transaction (a retried scan never duplicates rows).

File records go in with PostgreSQL's COPY or one ``executemany`` per batch elsewhere: the ORM's
``bulk_create`` costs ~0.3 ms a row, far too slow for images with 100k entries.

Every string here came from the image. Tar names are decoded with ``surrogateescape`` and JSON may
carry NUL characters, neither of which a database text column accepts, so text is made storable first:
undecodable bytes become ``\\xNN`` and NUL becomes ``\\x00``, visibly, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from django.db import connection, models, transaction
from django.db.models import F, Q

from .engine.model import FileEntry, ImageResult, ScanReport
from .models import FileRecord, Finding, Image, Layer, ScanRun, TriageStatus

BATCH = 5000


def db_text(value: str) -> str:
    """The text as a database can store it; unchanged for ordinary text."""
    if value.isascii() and "\x00" not in value:
        return value
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that did not come from surrogateescape
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\x00", "\\x00")


def db_json(value: Any) -> Any:
    """A JSON document with every key and string made storable (PostgreSQL's jsonb rejects NUL)."""
    if isinstance(value, str):
        return db_text(value)
    if isinstance(value, dict):
        return {db_text(str(k)): db_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [db_json(v) for v in value]
    return value


def _batches(items: Iterable, size: int = BATCH) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert plain tuples into ``model``'s table, as fast as the database allows."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(model._meta.get_field(name).column) for name in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        # Table and column names come from model metadata; every value is a bound parameter.
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608
        for batch in _batches(rows):
            cursor.executemany(sql, batch)


def store_report(run: ScanRun, report: ScanReport) -> None:
    """Replace whatever the run held with the report's images, layers, files and findings."""
    with transaction.atomic():
        Image.objects.filter(scan=run).delete()
        Finding.objects.filter(scan=run).delete()
        for result in report.images:
            _store_image(run, result)
        carry_triage(run)


def carry_triage(run: ScanRun) -> int:
    """Triage survives a re-scan: a finding whose fingerprint (rule, layer diff_id, path, content hash) was
    triaged or assigned earlier in the same case takes over the latest such decision. Returns how many."""
    fresh = Finding.objects.filter(scan=run)
    earlier = (
        Finding.objects.filter(case_id=run.evidence.case_id, fingerprint__in=fresh.values("fingerprint"))
        .exclude(scan=run)
        .filter(~Q(status=TriageStatus.OPEN) | Q(assignee__isnull=False))
        .order_by("fingerprint", F("triaged_at").desc(nulls_last=True), "-pk")
        .values("fingerprint", *TRIAGE_FIELDS)
    )
    decisions: dict[str, dict] = {}
    for row in earlier:
        decisions.setdefault(row.pop("fingerprint"), row)
    for fingerprint, decision in decisions.items():
        fresh.filter(fingerprint=fingerprint).update(**decision)
    return len(decisions)


TRIAGE_FIELDS = ("status", "triage_reason", "assignee_id", "triaged_by_id", "triaged_at")


def _store_image(run: ScanRun, result: ImageResult) -> None:
    image = Image.objects.create(
        scan=run,
        manifest_digest=db_text(result.manifest_digest),
        config_digest=db_text(result.config_digest),
        repo_tags=db_json(result.repo_tags),
        platform=db_text(result.platform),
        user=db_text(result.user),
        created=db_text(result.created),
        config=db_json(result.config),
    )
    layers = Layer.objects.bulk_create(
        Layer(
            image=image,
            index=layer.index,
            digest=db_text(layer.digest),
            diff_id=db_text(layer.diff_id),
            media_type=db_text(layer.media_type),
            size=layer.size,
            uncompressed_size=layer.uncompressed_size,
            created_by=db_text(layer.created_by),
            empty_history=db_json(layer.empty_history),
            files_added=layer.files_added,
            files_modified=layer.files_modified,
            files_deleted=layer.files_deleted,
            trusted=layer.trusted,
        )
        for layer in result.layers
    )
    layer_ids = {layer.index: layer.pk for layer in layers}
    hidden = {(grave.path, grave.added_layer): grave for grave in result.graveyard}
    insert_rows(
        FileRecord,
        FILE_FIELDS,
        (_file_row(image.pk, layer_ids[entry.layer_index], entry, hidden) for entry in result.files),
    )
    findings = (
        Finding(
            case_id=run.evidence.case_id,
            scan=run,
            image=image,
            layer_id=layer_ids.get(finding.layer_index) if finding.layer_index is not None else None,
            rule_id=db_text(finding.rule_id),
            severity=str(finding.severity),
            title=db_text(finding.title)[:300],
            detail=db_text(finding.detail),
            path=db_text(finding.path),
            sha256=db_text(finding.sha256),
            fingerprint=finding.fingerprint,
            excerpt=db_text(finding.excerpt),
            remediation=db_text(finding.remediation),
            hidden_layer_index=finding.hidden_layer_index,
            related=list(finding.related),
            suppressed=finding.suppressed,
            suppression=db_text(finding.suppression),
        )
        for finding in result.findings
    )
    for batch in _batches(findings):
        Finding.objects.bulk_create(batch, ignore_conflicts=True)


FILE_FIELDS = (
    "image", "layer", "path", "type", "mode", "uid", "gid", "size", "mtime", "link_target", "sha256",
    "flags", "change", "visible", "hidden_by", "hidden_how",
)  # fmt: skip


def _file_row(image_id: int, layer_id: int, entry: FileEntry, hidden: dict) -> tuple:
    grave = hidden.get((entry.path, entry.layer_index))
    return (
        image_id,
        layer_id,
        db_text(entry.path),
        str(entry.type),
        entry.mode,
        entry.uid,
        entry.gid,
        entry.size,
        entry.mtime,
        db_text(entry.link_target),
        entry.sha256,
        " ".join(sorted(entry.flags)),
        str(entry.change),
        entry.visible,
        grave.hidden_layer if grave else None,
        grave.how if grave else "",
    )
