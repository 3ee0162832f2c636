from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from scanner.models import ScanRun

from ..intake import client_address, receive_evidence
from ..models import Case, Evidence, Role
from .serializers import CaseSerializer, EvidenceSerializer, EvidenceUploadSerializer


def evidence_queryset():
    return Evidence.objects.select_related("uploaded_by").prefetch_related(
        Prefetch("scans", queryset=ScanRun.objects.order_by("-queued_at", "-pk"))
    )


class CaseViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = CaseSerializer

    def get_queryset(self):
        return Case.objects.visible_to(self.request.user).select_related("lead")

    def perform_create(self, serializer: CaseSerializer) -> None:
        serializer.instance = Case.open_case(lead=self.request.user, **serializer.validated_data)

    @extend_schema(
        request={"multipart/form-data": EvidenceUploadSerializer}, responses={201: EvidenceSerializer}
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser], url_path="evidence")
    def evidence(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        if case.role_of(request.user) not in (Role.LEAD, Role.INVESTIGATOR):
            raise PermissionDenied("viewers cannot add evidence")
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
