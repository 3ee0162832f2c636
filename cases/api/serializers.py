"""Representations of the API (DESIGN §5). Read serializers never trigger a query per row: the views
select and prefetch what they name."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scanner.models import FileRecord, Finding, Image, Layer, ScanRun, ScanStatus, TriageStatus

from ..models import (
    Case,
    CaseMembership,
    CaseStatus,
    Checklist,
    ChecklistItem,
    CustodyEvent,
    Evidence,
    FindingComment,
    Note,
    NoteRevision,
    Role,
    Severity,
    TimelineEvent,
    TimelineKind,
)
from ..workspace.actions import NARRATIVE_FIELDS

# The post-mortem narrative: whatever the workspace lets people edit (the summary is a field of its own).
NARRATIVE = [name for name in NARRATIVE_FIELDS if name != "summary"]
ID_MAX = 2**63 - 1  # a database id (64-bit): larger numbers are a 400, never an overflow
FINDING_SEVERITIES = ["critical", "high", "medium", "low", "info"]


def username(user) -> str | None:
    return user.username if user is not None else None


# --- cases and members -----------------------------------------------------------------------------------


class CaseSerializer(serializers.ModelSerializer):
    lead = serializers.CharField(source="lead.username", read_only=True)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    status = serializers.ChoiceField(choices=CaseStatus.choices, read_only=True)
    role = serializers.SerializerMethodField(help_text="your role on the case")
    template = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="a case template key (e.g. builtin:poisoned-image): presets severity, checklists and "
        "timeline headings",
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "key",
            "title",
            "summary",
            "severity",
            "status",
            "lead",
            "role",
            "template",
            *NARRATIVE,
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "key", "status", "lead", "role", *NARRATIVE, "created_at", "updated_at"]

    def get_role(self, case: Case) -> str | None:
        return getattr(case, "my_role", None)


class CaseUpdateSerializer(serializers.Serializer):
    """PATCH a case. Investigators: ``status`` (not to or from closed), summary and narrative. The lead:
    also ``title``, ``severity``, ``lead`` (a member's username: hands over the lead), close and reopen."""

    title = serializers.CharField(max_length=200, required=False)
    summary = serializers.CharField(required=False, allow_blank=True)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    status = serializers.ChoiceField(choices=CaseStatus.choices, required=False)
    lead = serializers.CharField(required=False, max_length=150, help_text="username of a member")

    def get_fields(self):
        fields = super().get_fields()
        for name in NARRATIVE:
            fields[name] = serializers.CharField(required=False, allow_blank=True, help_text="Markdown")
        return fields


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.INVESTIGATOR)
    is_lead = serializers.SerializerMethodField(help_text="the case's lead (there is one)")

    class Meta:
        model = CaseMembership
        fields = ["username", "role", "is_lead", "added_at"]
        read_only_fields = ["is_lead", "added_at"]

    def get_is_lead(self, membership: CaseMembership) -> bool:
        return membership.user_id == membership.case.lead_id

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value.strip(), is_active=True).first()
        if user is None:
            raise serializers.ValidationError("No such user.")
        return user


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- evidence --------------------------------------------------------------------------------------------


class ScanSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=ScanStatus.choices, read_only=True)

    class Meta:
        model = ScanRun
        fields = ["id", "status", "progress", "error", "queued_at", "started_at", "finished_at", "stats"]
        read_only_fields = fields


class EvidenceSerializer(serializers.ModelSerializer):
    case = serializers.PrimaryKeyRelatedField(read_only=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    scan = serializers.SerializerMethodField(help_text="the newest scan of this evidence (null if none)")

    class Meta:
        model = Evidence
        fields = [
            "id",
            "case",
            "original_name",
            "sha256",
            "size",
            "description",
            "uploaded_by",
            "uploaded_at",
            "scan",
        ]
        read_only_fields = fields

    @extend_schema_field(ScanSerializer(allow_null=True))
    def get_scan(self, evidence: Evidence) -> dict | None:
        runs = evidence.scans.all()  # prefetched: newest first
        return ScanSerializer(runs[0]).data if runs else None


class EvidenceUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    description = serializers.CharField(required=False, allow_blank=True, default="")


class CustodyEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = CustodyEvent
        fields = ["id", "evidence", "action", "actor", "at", "detail"]
        read_only_fields = fields

    def get_actor(self, event: CustodyEvent) -> str | None:
        return username(event.actor)


class VerificationSerializer(CustodyEventSerializer):
    match = serializers.SerializerMethodField(help_text="the stored bytes still hash to the SHA-256")

    class Meta(CustodyEventSerializer.Meta):
        fields = [*CustodyEventSerializer.Meta.fields, "match"]
        read_only_fields = fields

    def get_match(self, event: CustodyEvent) -> bool:
        return bool(event.detail.get("match"))


# --- images, layers, files -------------------------------------------------------------------------------


class LayerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Layer
        fields = [
            "id",
            "index",
            "digest",
            "diff_id",
            "media_type",
            "size",
            "uncompressed_size",
            "created_by",
            "empty_history",
            "files_added",
            "files_modified",
            "files_deleted",
            "trusted",
        ]
        read_only_fields = fields


class ImageSerializer(serializers.ModelSerializer):
    evidence = serializers.IntegerField(source="scan.evidence_id", read_only=True)
    layers = LayerSerializer(many=True, read_only=True)

    class Meta:
        model = Image
        fields = [
            "id",
            "evidence",
            "scan",
            "manifest_digest",
            "config_digest",
            "repo_tags",
            "platform",
            "user",
            "created",
            "layers",
        ]
        read_only_fields = fields


class ImageSummarySerializer(serializers.Serializer):
    """The config as people read it, with secrets in Env, labels and commands redacted."""

    user = serializers.CharField()
    runs_as_root = serializers.BooleanField()
    env = serializers.ListField(child=serializers.CharField())
    entrypoint = serializers.CharField()
    cmd = serializers.CharField()
    workdir = serializers.CharField()
    labels = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    ports = serializers.ListField(child=serializers.CharField())
    volumes = serializers.ListField(child=serializers.CharField())
    stop_signal = serializers.CharField()
    author = serializers.CharField()
    created = serializers.CharField()
    architecture = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())


class ImageDetailSerializer(ImageSerializer):
    summary = ImageSummarySerializer(read_only=True)
    graveyard_count = serializers.IntegerField(read_only=True)

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "summary", "graveyard_count"]
        read_only_fields = fields


class FileRecordSerializer(serializers.ModelSerializer):
    layer_index = serializers.IntegerField(source="layer.index", read_only=True)

    class Meta:
        model = FileRecord
        fields = [
            "id",
            "image",
            "layer",
            "layer_index",
            "path",
            "type",
            "mode",
            "uid",
            "gid",
            "size",
            "mtime",
            "link_target",
            "sha256",
            "flags",
            "change",
            "visible",
            "hidden_by",
            "hidden_how",
        ]
        read_only_fields = fields


class TreeChildSerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    is_dir = serializers.BooleanField()
    entries = serializers.IntegerField(help_text="records at or below this path")
    size = serializers.IntegerField()
    added = serializers.IntegerField()
    modified = serializers.IntegerField()
    deleted = serializers.IntegerField()
    hidden = serializers.IntegerField(help_text="graveyard records at or below this path")
    flagged = serializers.IntegerField()
    record = FileRecordSerializer(allow_null=True, help_text="the top-most record of this path")


class TreeSerializer(serializers.Serializer):
    path = serializers.CharField()
    view = serializers.ChoiceField(choices=["merged", "layer"])
    layer_index = serializers.IntegerField(allow_null=True)
    children = TreeChildSerializer(many=True)
    more = serializers.BooleanField()
    next_offset = serializers.IntegerField(allow_null=True)


# --- findings --------------------------------------------------------------------------------------------


class FindingSerializer(serializers.ModelSerializer):
    layer_index = serializers.IntegerField(
        source="layer.index", read_only=True, allow_null=True, default=None
    )
    layer_digest = serializers.CharField(source="layer.digest", read_only=True, allow_null=True, default=None)
    manifest_digest = serializers.CharField(
        source="image.manifest_digest", read_only=True, allow_null=True, default=None
    )
    config_digest = serializers.CharField(
        source="image.config_digest", read_only=True, allow_null=True, default=None
    )
    evidence = serializers.IntegerField(source="scan.evidence_id", read_only=True)
    assignee = serializers.CharField(
        source="assignee.username", read_only=True, allow_null=True, default=None
    )
    status = serializers.ChoiceField(choices=TriageStatus.choices, read_only=True)
    triaged_by = serializers.CharField(
        source="triaged_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Finding
        fields = [
            "id",
            "case",
            "rule_id",
            "severity",
            "title",
            "detail",
            "path",
            "sha256",
            "fingerprint",
            "excerpt",
            "remediation",
            "hidden_layer_index",
            "related",
            "suppressed",
            "suppression",
            "layer_index",
            "layer_digest",
            "manifest_digest",
            "config_digest",
            "image",
            "evidence",
            "scan",
            "status",
            "assignee",
            "triage_reason",
            "triaged_by",
            "triaged_at",
            "created_at",
        ]
        read_only_fields = fields


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = FindingComment
        fields = ["id", "author", "body", "at"]
        read_only_fields = fields


class FindingDetailSerializer(FindingSerializer):
    comments = CommentSerializer(many=True, read_only=True)

    class Meta(FindingSerializer.Meta):
        fields = [*FindingSerializer.Meta.fields, "comments"]
        read_only_fields = fields


class TriageSerializer(serializers.Serializer):
    """Triage one finding: any of ``status`` (with ``reason`` for false_positive and accepted),
    ``assignee`` (a member's username, or null to unassign) and ``note`` (added as a comment)."""

    status = serializers.ChoiceField(choices=TriageStatus.choices, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    assignee = serializers.CharField(required=False, allow_null=True, max_length=150)
    note = serializers.CharField(required=False, allow_blank=True, max_length=20000, write_only=True)


class FindingFilterSerializer(serializers.Serializer):
    severity = serializers.ListField(
        child=serializers.ChoiceField(choices=FINDING_SEVERITIES), required=False
    )
    rule_id = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    status = serializers.ListField(
        child=serializers.ChoiceField(choices=TriageStatus.choices), required=False
    )
    layer = serializers.IntegerField(required=False, min_value=0, max_value=ID_MAX)
    path = serializers.CharField(required=False, help_text="path prefix")
    evidence = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)


class BulkTriageSerializer(serializers.Serializer):
    """Triage many findings of the case at once: either ``ids`` or every finding matching ``filter``."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX), required=False, max_length=50_000
    )
    filter = FindingFilterSerializer(required=False)
    status = serializers.ChoiceField(choices=TriageStatus.choices, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    assignee = serializers.CharField(required=False, allow_null=True, max_length=150)

    def validate(self, attrs):
        if ("ids" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError("Give either ids or filter.")
        if "status" not in attrs and "assignee" not in attrs:
            raise serializers.ValidationError("Give a status, an assignee, or both.")
        return attrs


class BulkResultSerializer(serializers.Serializer):
    updated = serializers.IntegerField()


# --- timeline, notes, checklists -------------------------------------------------------------------------


class IdListField(serializers.ListField):
    child = serializers.IntegerField(min_value=1, max_value=ID_MAX)


class TimelineEventSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    findings = serializers.SerializerMethodField(help_text="ids of linked findings")
    evidence = serializers.SerializerMethodField(help_text="ids of linked evidence")
    editable = serializers.SerializerMethodField(help_text="manual entries and headings can be edited")

    class Meta:
        model = TimelineEvent
        fields = [
            "id",
            "occurred_at",
            "kind",
            "title",
            "body",
            "author",
            "created_at",
            "findings",
            "evidence",
            "editable",
        ]
        read_only_fields = fields

    def get_author(self, event: TimelineEvent) -> str | None:
        return username(event.author)

    def get_findings(self, event: TimelineEvent) -> list[int]:
        return [f.pk for f in event.findings.all()]  # prefetched

    def get_evidence(self, event: TimelineEvent) -> list[int]:
        return [e.pk for e in event.evidence.all()]

    def get_editable(self, event: TimelineEvent) -> bool:
        return event.kind in EDITABLE_KINDS


EDITABLE_KINDS = (TimelineKind.MANUAL, TimelineKind.HEADING)


class TimelineWriteSerializer(serializers.Serializer):
    """A manual entry or a heading. ``occurred_at`` is UTC (default: now)."""

    occurred_at = serializers.DateTimeField(required=False)
    title = serializers.CharField(max_length=300)
    body = serializers.CharField(required=False, allow_blank=True, default="", max_length=100_000)
    kind = serializers.ChoiceField(
        choices=[(k.value, k.label) for k in EDITABLE_KINDS], required=False, default=TimelineKind.MANUAL
    )
    findings = IdListField(required=False, max_length=10_000, help_text="ids of findings of this case")
    evidence = IdListField(required=False, max_length=1_000, help_text="ids of evidence of this case")


class NoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)
    updated_by = serializers.CharField(source="updated_by.username", read_only=True)
    revisions = serializers.IntegerField(source="revision_count", read_only=True, default=1)

    class Meta:
        model = Note
        fields = ["id", "title", "body", "author", "created_at", "updated_at", "updated_by", "revisions"]
        read_only_fields = ["id", "author", "created_at", "updated_at", "updated_by", "revisions"]
        extra_kwargs = {"body": {"required": False, "allow_blank": True}}


class NoteRevisionSerializer(serializers.ModelSerializer):
    editor = serializers.CharField(source="editor.username", read_only=True)

    class Meta:
        model = NoteRevision
        fields = ["id", "title", "body", "editor", "at"]
        read_only_fields = fields


class ChecklistItemSerializer(serializers.ModelSerializer):
    owner = serializers.SerializerMethodField()
    done_by = serializers.SerializerMethodField()

    class Meta:
        model = ChecklistItem
        fields = [
            "id",
            "checklist",
            "position",
            "text",
            "owner",
            "due",
            "done",
            "done_by",
            "done_at",
            "note",
            "finding",
        ]
        read_only_fields = fields

    def get_owner(self, item: ChecklistItem) -> str | None:
        return username(item.owner)

    def get_done_by(self, item: ChecklistItem) -> str | None:
        return username(item.done_by)


class ChecklistItemUpdateSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=500, required=False)
    owner = serializers.CharField(
        allow_null=True, required=False, max_length=150, help_text="a member's username, or null"
    )
    due = serializers.DateField(allow_null=True, required=False)
    note = serializers.CharField(allow_blank=True, required=False, max_length=2000)
    done = serializers.BooleanField(required=False)


class NewChecklistItemSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=500)
    finding = serializers.IntegerField(
        min_value=1,
        max_value=ID_MAX,
        required=False,
        allow_null=True,
        help_text="link to a finding of the case",
    )


class ChecklistSerializer(serializers.ModelSerializer):
    template = serializers.CharField(write_only=True, help_text="a checklist template slug")
    items = ChecklistItemSerializer(many=True, read_only=True)
    total = serializers.IntegerField(read_only=True, default=0)
    done = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Checklist
        fields = ["id", "template", "slug", "title", "description", "created_at", "total", "done", "items"]
        read_only_fields = ["id", "slug", "title", "description", "created_at", "total", "done", "items"]


class ChecklistTemplateSerializer(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    items = serializers.ListField(child=serializers.CharField())


# --- search ----------------------------------------------------------------------------------------------


class CaseRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()
    title = serializers.CharField()


class SearchFileSerializer(FileRecordSerializer):
    case = CaseRefSerializer(source="image.scan.evidence.case", read_only=True)
    evidence = serializers.IntegerField(source="image.scan.evidence_id", read_only=True)
    evidence_sha256 = serializers.CharField(source="image.scan.evidence.sha256", read_only=True)
    manifest_digest = serializers.CharField(source="image.manifest_digest", read_only=True)

    class Meta(FileRecordSerializer.Meta):
        fields = [*FileRecordSerializer.Meta.fields, "case", "evidence", "evidence_sha256", "manifest_digest"]
        read_only_fields = fields


class SearchFindingSerializer(FindingSerializer):
    case = CaseRefSerializer(read_only=True)

    class Meta(FindingSerializer.Meta):
        read_only_fields = FindingSerializer.Meta.fields


class SearchEvidenceSerializer(EvidenceSerializer):
    case = CaseRefSerializer(read_only=True)

    class Meta(EvidenceSerializer.Meta):
        read_only_fields = EvidenceSerializer.Meta.fields
