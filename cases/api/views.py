from __future__ import annotations

from django.db.models import Case as CaseWhen
from django.db.models import IntegerField, Prefetch, Q, Value, When
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from scanner.models import Finding, ScanRun, TriageStatus

from ..intake import client_address, receive_evidence
from ..models import Case, Evidence, Role
from .pull import EvidenceReferenceSerializer, queue_pull
from .serializers import CaseSerializer, EvidenceSerializer, EvidenceUploadSerializer, FindingSerializer

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
FINDING_ORDERINGS = {
    "severity": ("-severity_rank", "pk"),
    "-severity": ("severity_rank", "pk"),
    "rule_id": ("rule_id", "pk"),
    "path": ("path", "pk"),
    "layer": ("layer__index", "pk"),
    "created": ("created_at", "pk"),
    "-created": ("-created_at", "-pk"),
}


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def filter_findings(queryset, params):
    """Filters shared by every findings list: severity, rule_id, status (comma lists), layer, path prefix."""
    if severities := _csv(params.get("severity")):
        queryset = queryset.filter(severity__in=severities)
    if rules := _csv(params.get("rule_id")):
        queryset = queryset.filter(rule_id__in=rules)
    if statuses := _csv(params.get("status")):
        queryset = queryset.filter(status__in=statuses)
    if (layer := params.get("layer", "")).isdigit():
        queryset = queryset.filter(layer__index=int(layer))
    if prefix := params.get("path"):
        queryset = queryset.filter(path__startswith=prefix)
    rank = CaseWhen(
        *(When(severity=name, then=Value(value)) for name, value in SEVERITY_RANK.items()),
        default=Value(-1),
        output_field=IntegerField(),
    )
    ordering = FINDING_ORDERINGS.get(params.get("ordering", "severity"), FINDING_ORDERINGS["severity"])
    return queryset.annotate(severity_rank=rank).order_by(*ordering)


FINDING_FILTERS = [
    OpenApiParameter("severity", str, description="comma-separated: critical,high,medium,low,info"),
    OpenApiParameter("rule_id", str, description="comma-separated rule ids"),
    OpenApiParameter("status", str, description="comma-separated: " + ",".join(TriageStatus.values)),
    OpenApiParameter("layer", int, description="layer index"),
    OpenApiParameter("path", str, description="path prefix"),
    OpenApiParameter("ordering", str, enum=list(FINDING_ORDERINGS), description="default: severity"),
]


def evidence_queryset():
    return Evidence.objects.select_related("uploaded_by").prefetch_related(
        Prefetch("scans", queryset=ScanRun.objects.order_by("-queued_at", "-pk"))
    )


class CaseViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = CaseSerializer

    def get_queryset(self):
        cases = Case.objects.visible_to(self.request.user).select_related("lead")
        params = self.request.query_params
        if self.action == "list":
            if statuses := _csv(params.get("status")):
                cases = cases.filter(status__in=statuses)
            if severities := _csv(params.get("severity")):
                cases = cases.filter(severity__in=severities)
            if key := params.get("key"):
                cases = cases.filter(key=key)
            if text := params.get("q"):
                cases = cases.filter(
                    Q(title__icontains=text) | Q(summary__icontains=text) | Q(key__icontains=text)
                )
        return cases

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="comma-separated case statuses"),
            OpenApiParameter("severity", str, description="comma-separated case severities"),
            OpenApiParameter("key", str, description="exact case key, e.g. INC-2026-0042"),
            OpenApiParameter("q", str, description="text in key, title or summary"),
        ]
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=FINDING_FILTERS, responses=FindingSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="findings", serializer_class=FindingSerializer)
    def findings(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        queryset = filter_findings(
            Finding.objects.filter(case=case).select_related("layer", "image", "scan", "assignee"),
            request.query_params,
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(FindingSerializer(page, many=True).data)

    def perform_create(self, serializer: CaseSerializer) -> None:
        serializer.instance = Case.open_case(lead=self.request.user, **serializer.validated_data)

    @extend_schema(
        request={
            "multipart/form-data": EvidenceUploadSerializer,
            "application/json": EvidenceReferenceSerializer,
        },
        responses={201: EvidenceSerializer, 202: EvidenceReferenceSerializer},
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, JSONParser], url_path="evidence")
    def evidence(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        if case.role_of(request.user) not in (Role.LEAD, Role.INVESTIGATOR):
            raise PermissionDenied("viewers cannot add evidence")
        if "reference" in request.data and "file" not in request.data:
            return queue_pull(request, case)  # a registry reference: pulled by a worker (202)
        upload = EvidenceUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        evidence = receive_evidence(
            case=case,
            uploaded=upload.validated_data["file"],
            user=request.user,
            address=client_address(request),
            description=upload.validated_data["description"],
        )
        return Response(
            EvidenceSerializer(evidence_queryset().get(pk=evidence.pk)).data, status=status.HTTP_201_CREATED
        )


class EvidenceViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = EvidenceSerializer

    def get_queryset(self):
        return evidence_queryset().filter(case__in=Case.objects.visible_to(self.request.user))
