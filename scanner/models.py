"""What a scan found, as rows: the run itself, images, layers, file records and findings."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from cases.models import Case, Evidence


class ScanStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ScanRun(models.Model):
    """One scan of one evidence item. The database, not the broker, is the source of truth for its state.

    ``attempt`` is a fencing token: each claim by a worker increments it, and a worker only writes
    results while the row still carries its own attempt number.
    """

    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT, related_name="scans")
    status = models.CharField(
        max_length=16, choices=ScanStatus.choices, default=ScanStatus.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    engine_version = models.CharField(max_length=32, blank=True)
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-queued_at", "-pk"]

    def __str__(self) -> str:
        return f"scan {self.pk} of evidence {self.evidence_id}: {self.status}"

    @property
    def done(self) -> bool:
        return self.status in (ScanStatus.SUCCEEDED, ScanStatus.FAILED)

    @classmethod
    def enqueue(cls, evidence: Evidence) -> ScanRun:
        run = cls.objects.create(evidence=evidence)
        run.send()
        return run

    def send(self) -> None:
        """Wake a worker once the surrounding transaction commits (the row must exist when it looks)."""
        from .tasks import scan_evidence

        run_id = self.pk
        transaction.on_commit(lambda: scan_evidence.delay(run_id))

    @classmethod
    def stale(cls):
        """Runs no worker is moving: queued and never picked up, or running without a recent heartbeat."""
        cutoff = timezone.now() - timedelta(seconds=settings.LOWERDIR_SCAN_STALE_AFTER)
        return cls.objects.filter(
            models.Q(status=ScanStatus.QUEUED, queued_at__lt=cutoff)
            | models.Q(status=ScanStatus.RUNNING, heartbeat_at__lt=cutoff)
        )


class Image(models.Model):
    scan = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="images")
    manifest_digest = models.CharField(max_length=80, db_index=True)
    config_digest = models.CharField(max_length=80)
    repo_tags = models.JSONField(default=list, blank=True)
    platform = models.CharField(max_length=64, blank=True)
    user = models.CharField(max_length=256, blank=True)
    created = models.CharField(max_length=64, blank=True)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.manifest_digest


class Layer(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="layers")
    index = models.PositiveIntegerField()
    digest = models.CharField(max_length=80, db_index=True)
    diff_id = models.CharField(max_length=80, blank=True, db_index=True)
    media_type = models.CharField(max_length=128, blank=True)
    size = models.BigIntegerField(default=0)
    uncompressed_size = models.BigIntegerField(default=0)
    created_by = models.TextField(blank=True)
    empty_history = models.JSONField(default=list, blank=True)
    files_added = models.PositiveIntegerField(default=0)
    files_modified = models.PositiveIntegerField(default=0)
    files_deleted = models.PositiveIntegerField(default=0)
    trusted = models.BooleanField(default=True)

    class Meta:
        ordering = ["image", "index"]
        constraints = [models.UniqueConstraint(fields=["image", "index"], name="one_layer_per_index")]

    def __str__(self) -> str:
        return f"layer {self.index} {self.digest}"


class FileRecord(models.Model):
    """One tar member of one layer, or a whiteout (change=deleted). ``hidden_by`` marks the graveyard."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="files")
    layer = models.ForeignKey(Layer, on_delete=models.CASCADE, related_name="files")
    path = models.TextField()
    type = models.CharField(max_length=10)
    mode = models.PositiveIntegerField(default=0)
    uid = models.BigIntegerField(default=0)
    gid = models.BigIntegerField(default=0)
    size = models.BigIntegerField(default=0)
    mtime = models.BigIntegerField(default=0)
    link_target = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    flags = models.CharField(max_length=200, blank=True)  # space-separated, e.g. "setuid elf hidden"
    change = models.CharField(max_length=10)
    visible = models.BooleanField(default=True)
    hidden_by = models.PositiveIntegerField(null=True, blank=True)  # index of the layer that hid it
    hidden_how = models.CharField(max_length=10, blank=True)  # whiteout | opaque | shadowed

    class Meta:
        ordering = ["layer_id", "path"]
        indexes = [models.Index(fields=["image", "path"])]

    def __str__(self) -> str:
        return f"{self.path} (layer {self.layer_id}, {self.change})"


class TriageStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONFIRMED = "confirmed", "Confirmed"
    FALSE_POSITIVE = "false_positive", "False positive"
    ACCEPTED = "accepted", "Accepted risk"
    RESOLVED = "resolved", "Resolved"


class Finding(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="findings")
    scan = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="findings")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="findings", null=True)
    layer = models.ForeignKey(
        Layer, on_delete=models.SET_NULL, related_name="findings", null=True, blank=True
    )
    rule_id = models.CharField(max_length=64, db_index=True)
    severity = models.CharField(max_length=10, db_index=True)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    path = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    fingerprint = models.CharField(max_length=64)
    # From the rule pack (issue 4): a redacted excerpt (never a whole secret), how to fix it, the layer
    # that deleted or overwrote the file (it is still in the image), fingerprints of findings on the
    # same content, and an explicit, visible suppression.
    excerpt = models.TextField(blank=True)
    remediation = models.TextField(blank=True)
    hidden_layer_index = models.PositiveIntegerField(null=True, blank=True)
    related = models.JSONField(default=list, blank=True)
    suppressed = models.BooleanField(default=False)
    suppression = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=TriageStatus.choices, default=TriageStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    # Triage, set in the case workspace.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_findings",
    )
    triage_reason = models.TextField(blank=True)  # why: required for a false positive or an accepted risk
    triaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    triaged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["scan", "image", "fingerprint"], name="finding_once_per_image")
        ]
        indexes = [models.Index(fields=["case", "status"]), models.Index(fields=["case", "severity"])]

    def __str__(self) -> str:
        return f"{self.severity} {self.rule_id} {self.path}"
