"""Everything the post-mortem says, read once: the single source of the HTML, PDF, Markdown and JSON.

Every string that came from an image (paths, titles, commands, excerpts) or that a person typed (the
narrative, triage notes, checklist items) passes through :func:`redact` here, so no renderer can print a
secret whole, whichever format it writes. Renderers escape for their format; they never redact again and
never query the database.

The number of SQL queries is constant in the number of findings, timeline entries and layers.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db.models import Count, Prefetch
from django.utils import timezone

from scanner.models import Finding, Layer, ScanRun, TriageStatus

from ..models import (
    AuditEvent,
    Case,
    CaseMembership,
    Checklist,
    ChecklistItem,
    CustodyEvent,
    Evidence,
)
from ..workspace import timeline as case_timeline
from ..workspace.imageinfo import summary as image_summary
from ..workspace.queries import SEVERITY_ORDER, SEVERITY_RANK, case_images, flagged_layers
from ..workspace.redact import redact_text

SCHEMA = "lowerdir.postmortem/v1"

# FIRST's Traffic Light Protocol 2.0: the label and what it allows the reader to do with the document.
TLP = {
    "clear": ("TLP:CLEAR", "Recipients can spread this to the world; there is no limit on disclosure."),
    "green": ("TLP:GREEN", "Limited disclosure: recipients can spread this within their community."),
    "amber": (
        "TLP:AMBER",
        "Limited disclosure: recipients can share this on a need-to-know basis within their organisation "
        "and its clients.",
    ),
    "amber+strict": (
        "TLP:AMBER+STRICT",
        "Limited disclosure: restricted to the recipient's organisation only.",
    ),
    "red": ("TLP:RED", "For the eyes and ears of individual recipients only; no further disclosure."),
}

# Section ids and headings, in the order; every format uses exactly these headings.
SECTIONS = [
    ("summary", "1. Executive summary"),
    ("scope", "2. Scope and evidence"),
    ("detection", "3. Detection and root cause"),
    ("timeline", "4. Timeline (UTC)"),
    ("findings", "5. Findings"),
    ("false-positives", "6. False positives and suppressed findings"),
    ("remediation", "7. Remediation"),
    ("actions", "8. Action items and lessons learned"),
    ("appendix-layers", "Appendix A. Layers"),
    ("appendix-rules", "Appendix B. Rule catalogue"),
]
HEADINGS = dict(SECTIONS)

NARRATIVE = (
    "summary",
    "impact",
    "detection",
    "root_cause",
    "contributing_factors",
    "actions_mitigate",
    "actions_prevent",
    "lessons_went_well",
    "lessons_went_wrong",
    "lessons_lucky",
)
STATUS_ORDER = [s.value for s in TriageStatus]
STATUS_LABELS = {s.value: s.label for s in TriageStatus}


# What the rule pack already redacted (``scanner.engine.rules.content.redact``): at most four leading
# characters, the length and a hash prefix. Masking it again would garble it ("DB_PASSWORD=•••• (7 chars)
# chars, sha256:…]"), so these tokens are kept and only the text around them is redacted.
_ENGINE_REDACTED = re.compile(r"(\S{0,4}…\[\d+ chars, sha256:[0-9a-f]{8,64}\])")


def redact(text) -> str:
    """The one redaction every string of the document goes through (see module docstring)."""
    text = "" if text is None else str(text)
    if "…[" not in text:
        return redact_text(text)
    parts = _ENGINE_REDACTED.split(text)
    return "".join(part if n % 2 else redact_text(part) for n, part in enumerate(parts))


def normalise_tlp(value: str | None, default: str = "amber") -> str:
    """A TLP key ("amber+strict") from what a user typed: "TLP:AMBER+STRICT", "amber strict", "AMBER"..."""
    text = (value or "").strip().lower().removeprefix("tlp:").replace(" ", "+").replace("_", "+")
    return text if text in TLP else default


@dataclass
class Tlp:
    key: str
    label: str
    description: str

    @property
    def css(self) -> str:
        return self.key.replace("+", "-")


@dataclass
class CustodyRow:
    at: datetime
    action: str
    action_label: str
    actor: str
    detail: str


@dataclass
class EvidenceRow:
    pk: int
    name: str
    sha256: str
    size: int
    received_by: str
    received_at: datetime
    description: str
    scan_status: str
    custody: list[CustodyRow] = field(default_factory=list)


@dataclass
class LayerRow:
    index: int
    digest: str
    diff_id: str
    size: int
    created_by: str
    files_added: int
    files_modified: int
    files_deleted: int
    trusted: bool
    worst: str  # worst high/critical severity of its findings, "" if none
    findings: int
    model: Layer  # for the layer chart (the same SVG as the case page)


@dataclass
class ImageRow:
    pk: int
    evidence_name: str
    evidence_sha256: str
    tags: list[str]
    manifest_digest: str
    config_digest: str
    platform: str
    user: str
    runs_as_root: bool
    entrypoint: str
    cmd: str
    created: str
    layers: list[LayerRow]
    flagged: dict[int, str]

    @property
    def label(self) -> str:
        return self.tags[0] if self.tags else self.manifest_digest or self.config_digest


@dataclass
class FindingRow:
    pk: int
    rule_id: str
    severity: str
    title: str
    detail: str
    image_label: str
    layer_index: int | None
    layer_digest: str
    hidden_layer_index: int | None
    path: str
    sha256: str
    excerpt: str
    status: str
    status_label: str
    triage_note: str
    assignee: str
    triaged_by: str
    triaged_at: datetime | None
    suppressed: bool
    suppression: str


@dataclass
class ChecklistItemRow:
    text: str
    owner: str
    due: date | None
    done: bool
    done_by: str
    done_at: datetime | None
    note: str


@dataclass
class ChecklistRow:
    title: str
    slug: str
    description: str
    items: list[ChecklistItemRow]

    @property
    def done(self) -> int:
        return sum(item.done for item in self.items)

    @property
    def percent(self) -> int:
        return round(100 * self.done / len(self.items)) if self.items else 0


@dataclass
class TimelineRow:
    at: datetime
    kind: str
    kind_label: str
    title: str
    body: str
    markdown: bool
    author: str
    detail: str
    findings: int


@dataclass
class RuleRow:
    id: str
    severity: str
    title: str
    description: str
    remediation: str
    references: list[str]
    count: int
    in_catalogue: bool


@dataclass
class PostMortem:
    case: Case
    key: str
    title: str
    severity: str
    severity_label: str
    status: str
    status_label: str
    lead: str
    authors: list[str]
    members: list[tuple[str, str]]
    opened_at: datetime
    generated_at: datetime
    generated_by: str
    tlp: Tlp
    classification: str
    export_id: int | None
    narrative: dict[str, str]
    severity_counts: dict[str, dict[str, int]]  # severity -> {"total", "open"}
    matrix: dict[str, dict[str, int]]  # severity -> triage status -> count
    status_counts: dict[str, int]
    evidence: list[EvidenceRow]
    images: list[ImageRow]
    timeline: list[TimelineRow]
    findings: dict[str, list[FindingRow]]  # severity -> findings (false positives and suppressed excluded)
    false_positives: list[FindingRow]
    suppressed: list[FindingRow]
    checklists: list[ChecklistRow]
    rules: list[RuleRow]
    sections: list[tuple[str, str]] = field(default_factory=lambda: list(SECTIONS))

    # -- derived figures for the summary ---------------------------------------------------------------

    @property
    def evidence_digests(self) -> list[str]:
        return [e.sha256 for e in self.evidence]

    @property
    def total_findings(self) -> int:
        return sum(c["total"] for c in self.severity_counts.values())

    @property
    def open_findings(self) -> int:
        return self.status_counts.get(TriageStatus.OPEN, 0)

    @property
    def reported_findings(self) -> int:
        return sum(len(rows) for rows in self.findings.values())

    @property
    def severity_totals(self) -> dict[str, int]:
        return {name: c["total"] for name, c in self.severity_counts.items()}

    @property
    def checklist_items(self) -> int:
        return sum(len(c.items) for c in self.checklists)

    @property
    def checklist_done(self) -> int:
        return sum(c.done for c in self.checklists)

    @property
    def checklist_percent(self) -> int:
        total = self.checklist_items
        return round(100 * self.checklist_done / total) if total else 0

    @property
    def period(self) -> tuple[datetime | None, datetime | None]:
        times = [row.at for row in self.timeline]
        return (min(times), max(times)) if times else (None, None)

    @property
    def statuses(self) -> list[tuple[str, str]]:
        return [(s, STATUS_LABELS[s]) for s in STATUS_ORDER]

    @property
    def severities(self) -> list[str]:
        return list(SEVERITY_ORDER)

    def heading(self, section: str) -> str:
        return HEADINGS[section]


def _name(user) -> str:
    return user.username if user is not None else ""


def _custody_detail(event: CustodyEvent) -> str:
    detail = event.detail if isinstance(event.detail, dict) else {}
    if event.action == "verified":
        return "hash matches" if detail.get("match") else "HASH MISMATCH"
    if event.action == "accessed" and detail.get("path"):
        return f"recovered {detail.get('path')} from layer {detail.get('layer')}"
    if event.action == "exported":
        fmt = str(detail.get("format", "")).upper()
        sha = str(detail.get("sha256", ""))
        return f"post-mortem {fmt} sha256:{sha}" if sha else f"post-mortem {fmt}"
    if event.action == "received":
        if detail.get("how") == "pulled":
            return str(detail.get("pulled") or f"pulled {detail.get('reference', '')}")
        parts = []
        if detail.get("client_address"):
            parts.append(f"uploaded from {detail['client_address']}")
        if detail.get("sha256"):
            parts.append("SHA-256 computed while receiving")
        return "; ".join(parts)
    return ""


def _evidence(case: Case) -> list[EvidenceRow]:
    items = (
        Evidence.objects.filter(case=case)
        .select_related("uploaded_by")
        .prefetch_related(
            Prefetch(
                "custody_events", queryset=CustodyEvent.objects.select_related("actor").order_by("at", "pk")
            )
        )
        .order_by("uploaded_at", "pk")
    )
    latest_scan: dict[int, str] = {}
    for evidence_id, status in (
        ScanRun.objects.filter(evidence__case=case)
        .order_by("queued_at", "pk")
        .values_list("evidence_id", "status")
    ):
        latest_scan[evidence_id] = status
    rows = []
    for item in items:
        rows.append(
            EvidenceRow(
                pk=item.pk,
                name=redact(item.original_name),
                sha256=item.sha256,
                size=item.size,
                received_by=_name(item.uploaded_by),
                received_at=item.uploaded_at,
                description=redact(item.description),
                scan_status=latest_scan.get(item.pk, ""),
                custody=[
                    CustodyRow(
                        at=event.at,
                        action=event.action,
                        action_label=event.get_action_display(),
                        actor=_name(event.actor),
                        detail=redact(_custody_detail(event)),
                    )
                    for event in item.custody_events.all()
                ],
            )
        )
    return rows


def _images(case: Case) -> list[ImageRow]:
    flagged = flagged_layers(case)
    per_layer = dict(
        Finding.objects.filter(case=case, layer__isnull=False).values_list("layer_id").annotate(n=Count("pk"))
    )
    rows = []
    for image in case_images(case):
        info = image_summary(image)
        layers = list(image.layers.all())
        rows.append(
            ImageRow(
                pk=image.pk,
                evidence_name=redact(image.evidence.original_name),
                evidence_sha256=image.evidence.sha256,
                tags=[redact(tag) for tag in info["tags"]],
                manifest_digest=image.manifest_digest,
                config_digest=image.config_digest,
                platform=redact(image.platform or info["architecture"]),
                user=redact(info["user"]),
                runs_as_root=info["runs_as_root"],
                entrypoint=info["entrypoint"],
                cmd=info["cmd"],
                created=redact(info["created"]),
                flagged=flagged,
                layers=[
                    LayerRow(
                        index=layer.index,
                        digest=layer.digest,
                        diff_id=layer.diff_id,
                        size=layer.size,
                        created_by=redact(layer.created_by),
                        files_added=layer.files_added,
                        files_modified=layer.files_modified,
                        files_deleted=layer.files_deleted,
                        trusted=layer.trusted,
                        worst=flagged.get(layer.pk, ""),
                        findings=per_layer.get(layer.pk, 0),
                        model=layer,
                    )
                    for layer in layers
                ],
            )
        )
    return rows


def _findings(case: Case) -> list[FindingRow]:
    fields = {f.name for f in Finding._meta.get_fields()}
    queryset = (
        Finding.objects.filter(case=case)
        .select_related("layer", "image", "assignee", "triaged_by")
        .defer("image__config")
    )
    if "related" in fields:
        queryset = queryset.defer("related")
    rows = []
    for f in queryset.iterator(chunk_size=2000):
        label = ""
        if f.image is not None:
            tags = f.image.repo_tags or []
            label = redact(tags[0]) if tags else f.image.manifest_digest
        rows.append(
            FindingRow(
                pk=f.pk,
                rule_id=redact(f.rule_id),
                severity=f.severity,
                title=redact(f.title),
                detail=redact(f.detail),
                image_label=label,
                layer_index=f.layer.index if f.layer is not None else None,
                layer_digest=f.layer.digest if f.layer is not None else "",
                hidden_layer_index=getattr(f, "hidden_layer_index", None),
                path=redact(f.path),
                sha256=f.sha256,
                excerpt=redact(getattr(f, "excerpt", "")),
                status=f.status,
                status_label=STATUS_LABELS.get(f.status, f.status),
                triage_note=redact(f.triage_reason),
                assignee=_name(f.assignee),
                triaged_by=_name(f.triaged_by),
                triaged_at=f.triaged_at,
                suppressed=bool(getattr(f, "suppressed", False)),
                suppression=redact(getattr(f, "suppression", "")),
            )
        )
    rows.sort(
        key=lambda r: (
            -SEVERITY_RANK.get(r.severity, -1),
            r.rule_id,
            r.layer_index if r.layer_index is not None else -1,
            r.path,
            r.pk,
        )
    )
    return rows


def _checklists(case: Case) -> list[ChecklistRow]:
    items = ChecklistItem.objects.select_related("owner", "done_by").order_by("position", "pk")
    checklists = Checklist.objects.filter(case=case).prefetch_related(Prefetch("items", queryset=items))
    return [
        ChecklistRow(
            title=redact(checklist.title),
            slug=checklist.slug,
            description=redact(checklist.description),
            items=[
                ChecklistItemRow(
                    text=redact(item.text),
                    owner=_name(item.owner),
                    due=item.due,
                    done=item.done,
                    done_by=_name(item.done_by),
                    done_at=item.done_at,
                    note=redact(item.note),
                )
                for item in checklist.items.all()
            ],
        )
        for checklist in checklists
    ]


def _timeline(case: Case) -> list[TimelineRow]:
    rows = []
    for entry in case_timeline.build(case):
        count = len(entry.findings)
        many = entry.detail.endswith(" findings")  # "1,234 findings": only the first 20 are loaded
        if many:
            count = int(entry.detail.split()[0].replace(",", ""))
        rows.append(
            TimelineRow(
                at=entry.at.astimezone(UTC),
                kind=entry.kind,
                kind_label=entry.kind_label,
                title=redact(entry.title),
                body=redact(entry.body),
                markdown=entry.markdown,
                author=entry.author,
                detail=redact("" if many else entry.detail),
                findings=count,
            )
        )
    return rows


def _rules(findings: list[FindingRow]) -> list[RuleRow]:
    """Catalogue entries of the rules the findings refer to: from the rule pack when it has the rule, else
    the rule id and the title of one of its findings. The catalogue text comes from rule files (ours or an
    administrator's), not from images, and is printed as written: redacting prose about credentials
    ("a file holds a credential: private keys, ...") would garble it."""
    counts = Counter(f.rule_id for f in findings)
    titles: dict[str, str] = {}
    severities: dict[str, str] = {}
    for f in findings:
        titles.setdefault(f.rule_id, f.title)
        severities.setdefault(f.rule_id, f.severity)
    catalogue: dict = {}
    try:
        from scanner.engine.rules import load_ruleset

        catalogue = load_ruleset().rules
    except Exception:  # noqa: BLE001, S110 - a broken extra rule folder must not stop the report
        catalogue = {}
    rows = []
    for rule_id in sorted(counts):
        rule = catalogue.get(rule_id)
        if rule is not None:
            rows.append(
                RuleRow(  # the rule pack's own text (rule files, not image content): not redacted
                    id=rule_id,
                    severity=str(getattr(rule.severity, "value", rule.severity)),
                    title=rule.title,
                    description=rule.description,
                    remediation=rule.remediation,
                    references=list(rule.references),
                    count=counts[rule_id],
                    in_catalogue=True,
                )
            )
        else:
            rows.append(
                RuleRow(
                    id=rule_id,
                    severity=severities[rule_id],
                    title=titles[rule_id],
                    description="",
                    remediation="",
                    references=[],
                    count=counts[rule_id],
                    in_catalogue=False,
                )
            )
    return rows


def _authors(case: Case) -> list[str]:
    """The lead first, then everyone who changed the case (audit log actors), most active first."""
    rows = (
        AuditEvent.objects.filter(case=case, actor__isnull=False)
        .exclude(action__startswith="postmortem.")
        .values_list("actor__username")
        .annotate(n=Count("pk"))
        .order_by("-n", "actor__username")
    )
    names = [case.lead.username]
    for username, _n in rows:
        if username not in names:
            names.append(username)
    return names


def build(
    case: Case,
    *,
    user=None,
    tlp: str = "amber",
    classification: str = "",
    generated_at: datetime | None = None,
    export_id: int | None = None,
) -> PostMortem:
    """Read every fact of the post-mortem for ``case``; ``user`` is who asked for it (the document says)."""
    case = Case.objects.select_related("lead").get(pk=case.pk)
    tlp_key = normalise_tlp(tlp)
    label, description = TLP[tlp_key]
    findings = _findings(case)
    severity_counts = {name: {"total": 0, "open": 0} for name in SEVERITY_ORDER}
    matrix = {name: dict.fromkeys(STATUS_ORDER, 0) for name in SEVERITY_ORDER}
    status_counts: dict[str, int] = dict.fromkeys(STATUS_ORDER, 0)
    grouped: dict[str, list[FindingRow]] = {name: [] for name in SEVERITY_ORDER}
    false_positives, suppressed = [], []
    for f in findings:
        counts = severity_counts.setdefault(f.severity, {"total": 0, "open": 0})
        counts["total"] += 1
        counts["open"] += f.status == TriageStatus.OPEN
        matrix.setdefault(f.severity, dict.fromkeys(STATUS_ORDER, 0))
        matrix[f.severity][f.status] = matrix[f.severity].get(f.status, 0) + 1
        status_counts[f.status] = status_counts.get(f.status, 0) + 1
        if f.status == TriageStatus.FALSE_POSITIVE:
            false_positives.append(f)
        elif f.suppressed:
            suppressed.append(f)
        else:
            grouped.setdefault(f.severity, []).append(f)
    members = [
        (m.user.username, m.get_role_display())
        for m in CaseMembership.objects.filter(case=case).select_related("user").order_by("user__username")
    ]
    return PostMortem(
        case=case,
        key=case.key,
        title=redact(case.title),
        severity=case.severity,
        severity_label=case.get_severity_display(),
        status=case.status,
        status_label=case.get_status_display(),
        lead=case.lead.username,
        authors=_authors(case),
        members=members,
        opened_at=case.created_at,
        generated_at=(generated_at or timezone.now()).astimezone(UTC),
        generated_by=_name(user),
        tlp=Tlp(tlp_key, label, description),
        classification=redact(classification),
        export_id=export_id,
        narrative={name: redact(getattr(case, name, "")) for name in NARRATIVE},
        severity_counts=severity_counts,
        matrix=matrix,
        status_counts=status_counts,
        evidence=_evidence(case),
        images=_images(case),
        timeline=_timeline(case),
        findings=grouped,
        false_positives=false_positives,
        suppressed=suppressed,
        checklists=_checklists(case),
        rules=_rules(findings),
    )


def size_of(case: Case) -> int:
    """How big the document will be, in rows (findings + stored timeline entries + custody events): what
    decides between rendering in the request and in a Celery task. Three cheap COUNT queries."""
    from ..models import TimelineEvent

    return (
        Finding.objects.filter(case=case).count()
        + TimelineEvent.objects.filter(case=case).count()
        + CustodyEvent.objects.filter(evidence__case=case).count()
    )


__all__ = ["HEADINGS", "SCHEMA", "SECTIONS", "TLP", "PostMortem", "build", "size_of"]
