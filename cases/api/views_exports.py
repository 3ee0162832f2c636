"""Post-mortem exports of a case (issue 6) through the API: list the export records with their hashes,
request one (rendered now, or by a worker for a large PDF), and download its bytes.

Requesting and rendering go through :mod:`cases.postmortem.exports` (the record, the stored bytes, the
SHA-256, custody events on the evidence covered, the audit log), and the download is the post-mortem
app's own view (bytes checked against the recorded SHA-256 before they go out, ``Repr-Digest`` header,
audited), so the API and ``/cases/{id}/postmortem.pdf`` behave the same. Every member may export, viewers
included: an export reads the case and carries no evidence bytes.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ..models import ExportFormat, ExportRecord
from ..postmortem import context, exports
from ..postmortem import views as postmortem_views
from .base import CaseScopedViewSet

TLP_CHOICES = list(context.TLP)


class ExportSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    evidence_sha256 = serializers.ListField(
        source="evidence",
        child=serializers.CharField(),
        read_only=True,
        help_text="SHA-256 of each evidence item the document covers (each got an `exported` custody event)",
    )
    download = serializers.SerializerMethodField(help_text="where the bytes are, once done")

    class Meta:
        model = ExportRecord
        fields = [
            "id",
            "case",
            "format",
            "status",
            "progress",
            "tlp",
            "classification",
            "sha256",
            "size",
            "pages",
            "evidence_sha256",
            "requested_by",
            "requested_at",
            "started_at",
            "finished_at",
            "error",
            "download",
        ]
        read_only_fields = fields

    def get_download(self, record: ExportRecord) -> str | None:
        if record.status != "done":
            return None
        return f"/api/cases/{record.case_id}/exports/{record.pk}/download/"


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.choices, help_text="pdf, md (Markdown) or json")
    tlp = serializers.ChoiceField(
        choices=TLP_CHOICES, required=False, help_text="default: the site's setting"
    )
    classification = serializers.CharField(required=False, allow_blank=True, max_length=100)


@extend_schema(tags=["exports"])
class ExportViewSet(CaseScopedViewSet):
    serializer_class = ExportSerializer
    write_actions = frozenset()  # viewers may export too

    def get_queryset(self):
        if self.schema_only:
            return ExportRecord.objects.none()
        return (
            ExportRecord.objects.filter(case=self.case)
            .select_related("requested_by")
            .order_by("-requested_at", "-pk")
        )

    def list(self, request: Request, case_id: int) -> Response:
        """Every export of the case, newest first, with the SHA-256 and size of the bytes handed out."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ExportSerializer(page, many=True).data)

    def retrieve(self, request: Request, case_id: int, pk: int) -> Response:
        return Response(ExportSerializer(get_object_or_404(self.get_queryset(), pk=pk)).data)

    @extend_schema(
        request=ExportRequestSerializer,
        responses={
            201: OpenApiResponse(ExportSerializer, description="rendered now: status done, download ready"),
            202: OpenApiResponse(ExportSerializer, description="a worker renders it: poll the record"),
        },
    )
    def create(self, request: Request, case_id: int) -> Response:
        """Export the post-mortem. Markdown, JSON and the PDF of a small case render in the request (201);
        the PDF of a large case is queued for a worker (202: poll ``GET …/exports/{id}/``)."""
        body = ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        record = exports.request_export(
            self.case,
            request.user,
            data["format"],
            tlp=data.get("tlp", ""),
            classification=data.get("classification"),
        )
        if not exports.runs_inline(self.case, data["format"]):
            exports.queue(record)
            return Response(
                self._fresh(record),
                status=status.HTTP_202_ACCEPTED,
                headers={"Location": f"/api/cases/{self.case.pk}/exports/{record.pk}/"},
            )
        exports.run_inline(record)  # a failure is recorded on the export and re-raised (a 500)
        return Response(self._fresh(record), status=status.HTTP_201_CREATED)

    def _fresh(self, record: ExportRecord) -> dict:
        return ExportSerializer(self.get_queryset().get(pk=record.pk)).data

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            (200, "text/markdown"): OpenApiTypes.BINARY,
            (200, "application/json"): OpenApiTypes.BINARY,
            409: OpenApiResponse(description="not done yet (or failed): the export record"),
        },
    )
    def download(self, request: Request, case_id: int, pk: int):
        """The stored bytes, checked against the recorded SHA-256 first (``Repr-Digest`` and
        ``X-Content-SHA256`` headers carry it); each download is audited."""
        get_object_or_404(self.get_queryset(), pk=pk)
        # DRF has authenticated the request (token or session) and set the user on the Django request
        return postmortem_views.export_download(request._request, self.case.pk, export_id=pk)
