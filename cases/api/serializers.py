from __future__ import annotations

from rest_framework import serializers

from scanner.models import Finding, ScanRun

from ..models import Case, Evidence


class CaseSerializer(serializers.ModelSerializer):
    lead = serializers.CharField(source="lead.username", read_only=True)

    class Meta:
        model = Case
        fields = ["id", "key", "title", "summary", "severity", "status", "lead", "created_at", "updated_at"]
        read_only_fields = ["id", "key", "status", "lead", "created_at", "updated_at"]


class ScanSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScanRun
        fields = ["id", "status", "progress", "error", "queued_at", "started_at", "finished_at", "stats"]
        read_only_fields = fields


class EvidenceSerializer(serializers.ModelSerializer):
    case = serializers.PrimaryKeyRelatedField(read_only=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    scan = serializers.SerializerMethodField()

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

    def get_scan(self, evidence: Evidence) -> dict | None:
        runs = evidence.scans.all()  # prefetched: newest first
        return ScanSerializer(runs[0]).data if runs else None


class EvidenceUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    description = serializers.CharField(required=False, allow_blank=True, default="")


class FindingSerializer(serializers.ModelSerializer):
    layer_index = serializers.IntegerField(
        source="layer.index", read_only=True, allow_null=True, default=None
    )
    layer_digest = serializers.CharField(source="layer.digest", read_only=True, allow_null=True, default=None)
    manifest_digest = serializers.CharField(source="image.manifest_digest", read_only=True, default=None)
    evidence = serializers.IntegerField(source="scan.evidence_id", read_only=True)
    assignee = serializers.CharField(
        source="assignee.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Finding
        fields = [
            "id",
            "rule_id",
            "severity",
            "title",
            "detail",
            "path",
            "sha256",
            "fingerprint",
            "layer_index",
            "layer_digest",
            "manifest_digest",
            "evidence",
            "status",
            "assignee",
            "triage_reason",
            "created_at",
        ]
        read_only_fields = fields
