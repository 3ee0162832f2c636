"""Read-side queries for the case workspace. Each page costs a constant number of SQL queries, whatever
the number of findings or file records (aggregates in SQL, pagination, prefetching)."""

from __future__ import annotations

from django.db.models import Case as SqlCase
from django.db.models import Count, IntegerField, Prefetch, Q, Value, When

from scanner.models import Finding, Image, Layer, ScanRun, ScanStatus

from ..models import Case, ChecklistItem

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK = {name: 4 - n for n, name in enumerate(SEVERITY_ORDER)}
HIGH = ("critical", "high")

severity_rank = SqlCase(
    *(When(severity=name, then=Value(rank)) for name, rank in SEVERITY_RANK.items()),
    default=Value(-1),
    output_field=IntegerField(),
)


def severity_counts(case: Case, *, open_only: bool = False) -> dict[str, dict[str, int]]:
    """{"critical": {"total": n, "open": m}, ...} in one query."""
    rows = (
        Finding.objects.filter(case=case)
        .values("severity")
        .annotate(total=Count("pk"), open=Count("pk", filter=Q(status="open")))
    )
    counts = {name: {"total": 0, "open": 0} for name in SEVERITY_ORDER}
    for row in rows:
        counts.setdefault(row["severity"], {"total": 0, "open": 0})
        counts[row["severity"]] = {"total": row["total"], "open": row["open"]}
    return counts


def status_counts(case: Case) -> dict[str, int]:
    return dict(Finding.objects.filter(case=case).values_list("status").annotate(n=Count("pk")))


def checklist_progress(case: Case) -> dict[str, int]:
    agg = ChecklistItem.objects.filter(checklist__case=case).aggregate(
        total=Count("pk"), done=Count("pk", filter=Q(done=True))
    )
    agg["percent"] = round(100 * agg["done"] / agg["total"]) if agg["total"] else 0
    return agg


def scans_with_images(case: Case):
    layers = Prefetch("layers", queryset=Layer.objects.order_by("index"))
    images = Prefetch("images", queryset=Image.objects.prefetch_related(layers))
    return (
        ScanRun.objects.filter(evidence__case=case)
        .select_related("evidence", "evidence__uploaded_by")
        .prefetch_related(images)
        .order_by("-queued_at", "-pk")
    )


def latest_scans(case: Case) -> list[ScanRun]:
    """The newest scan of each evidence item, newest evidence first (images and layers prefetched)."""
    latest: dict[int, ScanRun] = {}
    for run in scans_with_images(case):
        latest.setdefault(run.evidence_id, run)
    return list(latest.values())


def case_images(case: Case) -> list[Image]:
    """Images of the latest successful scan of each evidence item, with their evidence, oldest first."""
    images = []
    for run in latest_scans(case):
        if run.status == ScanStatus.SUCCEEDED:
            for image in run.images.all():
                image.evidence = run.evidence
                images.append(image)
    return images


def flagged_layers(case: Case) -> dict[int, str]:
    """Layer id -> worst severity among its high/critical findings (one query)."""
    worst: dict[int, str] = {}
    rows = (
        Finding.objects.filter(case=case, severity__in=HIGH, layer__isnull=False)
        .values_list("layer_id", "severity")
        .distinct()
    )
    for layer_id, severity in rows:
        if SEVERITY_RANK.get(severity, -1) > SEVERITY_RANK.get(worst.get(layer_id, ""), -1):
            worst[layer_id] = severity
    return worst


def layer_finding_counts(case: Case) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    rows = (
        Finding.objects.filter(case=case, layer__isnull=False)
        .values("layer_id", "severity")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        counts.setdefault(row["layer_id"], {})[row["severity"]] = row["n"]
    return counts
