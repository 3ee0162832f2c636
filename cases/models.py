"""Cases, who may see them, the evidence they hold and its chain of custody, and the audit log."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONTAINED = "contained", "Contained"
    ERADICATED = "eradicated", "Eradicated"
    RECOVERED = "recovered", "Recovered"
    CLOSED = "closed", "Closed"


class Role(models.TextChoices):
    LEAD = "lead", "Lead"
    INVESTIGATOR = "investigator", "Investigator"
    VIEWER = "viewer", "Viewer"


class CaseQuerySet(models.QuerySet):
    def visible_to(self, user) -> CaseQuerySet:
        """The one place that decides which cases a user may see: those they are a member of."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Case(models.Model):
    key = models.CharField(max_length=32, unique=True, editable=False)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MEDIUM)
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    lead = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="led_cases")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The post-mortem narrative, written during and after the incident.
    root_cause = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    lessons_went_well = models.TextField("what went well", blank=True)
    lessons_went_wrong = models.TextField("what went wrong", blank=True)
    lessons_lucky = models.TextField("where we got lucky", blank=True)
    # More of the narrative, for the post-mortem export (issue 6).
    detection = models.TextField("detection and trigger", blank=True)
    contributing_factors = models.TextField("contributing factors", blank=True)
    actions_mitigate = models.TextField("action items: mitigate", blank=True)
    actions_prevent = models.TextField("action items: prevent", blank=True)
    template = models.CharField(max_length=100, blank=True)  # the case template it was opened from

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("cases:detail", args=[self.pk])

    @classmethod
    def open_case(cls, *, lead, title: str, summary: str = "", severity: str = Severity.MEDIUM,
                  template: str = "") -> Case:
        """Create a case with the next free key (INC-<year>-<nnnn>); its creator becomes its lead."""
        year = timezone.now().year
        prefix = f"INC-{year}-"
        for _attempt in range(20):
            last = cls.objects.filter(key__startswith=prefix).order_by("-key").values_list("key", flat=True)
            number = int(last[0].removeprefix(prefix)) + 1 if last else 1
            try:
                with transaction.atomic():
                    case = cls.objects.create(
                        key=f"{prefix}{number:04d}", title=title, summary=summary, severity=severity,
                        lead=lead, template=template,
                    )
                    CaseMembership.objects.create(case=case, user=lead, role=Role.LEAD)
                    AuditEvent.record(case=case, actor=lead, action="case.created", data={"key": case.key})
                    return case
            except IntegrityError:
                continue  # another request took the same key; try the next one
        raise RuntimeError("could not allocate a case key")

    def role_of(self, user) -> str | None:
        membership = self.memberships.filter(user=user).first()
        return membership.role if membership else None


class CaseMembership(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="case_memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.INVESTIGATOR)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} on {self.case.key}"


class ImmutableModel(models.Model):
    """Rows that are written once: chain-of-custody and audit records are never edited or deleted."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError(f"{type(self).__name__} records are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{type(self).__name__} records are immutable")


class Evidence(ImmutableModel):
    """An uploaded artefact. Its bytes live in content-addressed storage and are never modified."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="evidence")
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-uploaded_at"]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return f"{self.original_name} ({self.sha256[:12]})"


class CustodyAction(models.TextChoices):
    RECEIVED = "received", "Received"
    VERIFIED = "verified", "Verified"
    ACCESSED = "accessed", "Accessed"
    EXPORTED = "exported", "Exported"


class CustodyEvent(ImmutableModel):
    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT, related_name="custody_events")
    action = models.CharField(max_length=16, choices=CustodyAction.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} of evidence {self.evidence_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class AuditEvent(ImmutableModel):
    """Append-only, hash-chained log: each event stores the hash of the one before it."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, null=True, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    action = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id} at {self.at:%Y-%m-%d %H:%M:%S}"

    def compute_hash(self) -> str:
        body = {
            "prev": self.prev_hash,
            "case": self.case_id,
            "actor": self.actor_id,
            "action": self.action,
            "at": self.at.isoformat(),
            "data": self.data,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    @classmethod
    def record(
        cls, *, action: str, actor=None, case: Case | None = None, data: dict | None = None
    ) -> AuditEvent:
        with transaction.atomic():
            # Lock the chain's tail so concurrent writers cannot fork it (a no-op lock on SQLite, whose
            # IMMEDIATE transactions already serialise writers).
            previous = cls.objects.select_for_update().order_by("-pk").values_list("hash", flat=True).first()
            event = cls(case=case, actor=actor, action=action, data=data or {}, prev_hash=previous or "")
            event.hash = event.compute_hash()
            event.save()
            return event


# --- the case workspace: timeline, notes, checklists, finding comments, case templates -------------------


class TimelineKind(models.TextChoices):
    HISTORY = "history", "Image history"
    EVIDENCE = "evidence", "Evidence"
    SCAN = "scan", "Scan"
    FINDING = "finding", "Finding"
    STATUS = "status", "Status"
    CHECKLIST = "checklist", "Checklist"
    MANUAL = "manual", "Manual entry"
    HEADING = "heading", "Heading"


class TimelineEvent(models.Model):
    """A stored timeline entry: what people did (status changes, triage, checklist items, manual entries).

    Entries derived from other rows (image history, custody events, scans) are not stored here; they are
    read from their source rows when the timeline is shown (``cases.workspace.timeline``).
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="timeline_events")
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)  # UTC
    kind = models.CharField(max_length=16, choices=TimelineKind.choices, default=TimelineKind.MANUAL)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)  # Markdown, sanitised when rendered
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    findings = models.ManyToManyField("scanner.Finding", blank=True, related_name="timeline_events")
    evidence = models.ManyToManyField(Evidence, blank=True, related_name="timeline_events")

    class Meta:
        ordering = ["occurred_at", "pk"]
        indexes = [models.Index(fields=["case", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.title}"


class Note(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)  # Markdown, sanitised when rendered
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-updated_at", "-pk"]

    def __str__(self) -> str:
        return self.title


class NoteRevision(ImmutableModel):
    """Every saved version of a note, oldest first: the edit history."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="revisions")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.title} ({self.at:%Y-%m-%d %H:%M})"


class Checklist(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="checklists")
    slug = models.CharField(max_length=64, blank=True)  # the template it came from
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.title


class ChecklistItem(models.Model):
    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(default=0)
    text = models.CharField(max_length=500)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    due = models.DateField(null=True, blank=True)
    done = models.BooleanField(default=False)
    done_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+")
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    finding = models.ForeignKey("scanner.Finding", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="checklist_items")
    suggestion_key = models.CharField(max_length=200, blank=True)  # set when accepted from a suggestion

    class Meta:
        ordering = ["checklist_id", "position", "pk"]

    def __str__(self) -> str:
        return self.text


class FindingComment(ImmutableModel):
    finding = models.ForeignKey("scanner.Finding", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"comment {self.pk} on finding {self.finding_id}"


class CaseTemplate(models.Model):
    """An admin-managed case template; built-in templates ship as YAML in ``cases/data/case_templates``."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MEDIUM)
    checklists = models.JSONField(default=list, blank=True, help_text="checklist template slugs")
    timeline_headings = models.JSONField(default=list, blank=True, help_text="a list of headings")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# --- post-mortem exports (issue 6) ----------------------------------------------------------------------


class ExportFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    MARKDOWN = "md", "Markdown"
    JSON = "json", "JSON"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Rendering"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportRecord(models.Model):
    """One post-mortem export: what was asked for, by whom, and (once rendered) the SHA-256 and size of the
    exact bytes handed out. The bytes are kept (``storage_key``) so the same document can be fetched again
    and checked against its hash. Rendering happens inline for small cases and in a Celery task for large
    ones (``cases.postmortem.exports``); ``attempt`` fences a worker that was presumed dead."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="exports")
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    tlp = models.CharField("TLP", max_length=32)
    classification = models.CharField(max_length=100, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    size = models.BigIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    storage_key = models.CharField(max_length=255, blank=True)
    evidence = models.JSONField(default=list, blank=True)  # SHA-256 of each evidence item covered
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.case_id} post-mortem {self.format} {self.status} {self.sha256[:12]}"

    @property
    def done(self) -> bool:
        return self.status in (ExportStatus.DONE, ExportStatus.FAILED)

    @property
    def filename(self) -> str:
        return f"{self.case.key}-postmortem.{self.format}"
