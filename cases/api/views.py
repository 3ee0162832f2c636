"""Cases, members, evidence, images and findings. Every view reaches rows only through
:mod:`cases.api.scope` (non-members: 404; insufficient role: 403) and changes them only through the
domain services the web UI uses (:mod:`cases.workspace.actions`, :mod:`cases.intake`,
:mod:`cases.custody`), so the API and the UI apply the same rules and write the same audit trail."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Prefetch, Q
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from scanner.models import FileRecord, Finding, Image, Layer, ScanRun

from ..custody import verify_evidence
from ..intake import client_address, receive_evidence
from ..models import Case, CaseMembership, CaseStatus, CustodyEvent, Evidence, FindingComment, Role
from ..playbooks import find_case_template
from ..workspace import actions, browser, imageinfo
from . import filters
from .base import ApiViewSet, CaseScopedViewSet, UploadThrottle
from .pull import EvidenceReferenceSerializer, queue_pull
from .scope import cases_for, require, role_on, visible
from .serializers import (
    BulkResultSerializer,
    BulkTriageSerializer,
    CaseSerializer,
    CaseUpdateSerializer,
    CustodyEventSerializer,
    EvidenceSerializer,
    EvidenceUploadSerializer,
    FileRecordSerializer,
    FindingDetailSerializer,
    FindingSerializer,
    ImageDetailSerializer,
    ImageSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    TreeSerializer,
    TriageSerializer,
    VerificationSerializer,
)

# Kept importable under their old names (the findings filters predate this module's split).
filter_findings = filters.filter_findings
FINDING_FILTERS = filters.FINDING_FILTERS

CASE_FILTERS = [
    OpenApiParameter("status", str, description="comma-separated case statuses"),
    OpenApiParameter("severity", str, description="comma-separated case severities"),
    OpenApiParameter("key", str, description="exact case key, e.g. INC-2026-0042"),
    OpenApiParameter("q", str, description="text in key, title or summary"),
]


def evidence_queryset():
    return Evidence.objects.select_related("uploaded_by").prefetch_related(
        Prefetch("scans", queryset=ScanRun.objects.order_by("-queued_at", "-pk"))
    )


def findings_queryset():
    return Finding.objects.select_related("layer", "image", "scan", "assignee", "triaged_by").defer(
        "image__config", "scan__stats"
    )


def member_user(case, name) -> object | None:
    """A member of the case by username (None for null/""), or a 400 naming the field."""
    if name in (None, ""):
        return None
    user = get_user_model().objects.filter(username=name, case_memberships__case=case).first()
    if user is None:
        raise ValidationError({"assignee": [f"{name} is not a member of this case."]})
    return user


# --- cases -----------------------------------------------------------------------------------------------


@extend_schema(tags=["cases"])
class CaseViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = CaseSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        cases = cases_for(self.request.user)
        params = self.request.query_params
        if self.action == "list":
            if statuses := filters.csv(params.get("status")):
                cases = cases.filter(status__in=statuses)
            if severities := filters.csv(params.get("severity")):
                cases = cases.filter(severity__in=severities)
            if key := params.get("key"):
                cases = cases.filter(key=filters.no_nul(key, "key"))
            if text := params.get("q"):
                text = filters.no_nul(text, "q")
                cases = cases.filter(
                    Q(title__icontains=text) | Q(summary__icontains=text) | Q(key__icontains=text)
                )
        return cases.order_by("-created_at", "-pk")

    @extend_schema(parameters=CASE_FILTERS)
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer: CaseSerializer) -> None:
        data = dict(serializer.validated_data)
        spec = None
        if key := data.pop("template", ""):
            spec = find_case_template(key)
            if spec is None:
                raise ValidationError({"template": [f"Unknown case template {key!r}."]})
        data.setdefault("severity", spec.severity if spec else "medium")
        with transaction.atomic():
            case = Case.open_case(lead=self.request.user, template=spec.key if spec else "", **data)
            if spec:
                actions.apply_case_template(case, self.request.user, spec)
        serializer.instance = cases_for(self.request.user).get(pk=case.pk)

    @extend_schema(request=CaseUpdateSerializer, responses=CaseSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        role = case.my_role
        require(role, write=True)
        update = CaseUpdateSerializer(data=request.data)
        update.is_valid(raise_exception=True)
        values = update.validated_data
        lead_only = [
            name for name in actions.LEAD_FIELDS if name in values and values[name] != getattr(case, name)
        ]
        new_lead = None
        if "lead" in values:
            new_lead = (
                get_user_model().objects.filter(username=values["lead"], case_memberships__case=case).first()
            )
            if new_lead is None:
                raise ValidationError({"lead": ["The new lead must be a member of the case."]})
            if new_lead.pk != case.lead_id:
                lead_only.append("lead")
        if lead_only and role != Role.LEAD:
            raise PermissionDenied(f"Only the case lead can change {', '.join(lead_only)}.")
        new_status = values.get("status")
        if new_status and new_status != case.status and CaseStatus.CLOSED in (new_status, case.status):
            require(role, lead=True)
        changes = {
            name: values[name] for name in (*actions.NARRATIVE_FIELDS, *actions.LEAD_FIELDS) if name in values
        }
        with transaction.atomic():
            actions.update_case(case, request.user, changes, role=role)
            if new_status:
                actions.change_status(case, request.user, new_status, role=role)
            if new_lead is not None and new_lead.pk != case.lead_id:
                actions.set_lead(case, request.user, new_lead)
        return Response(CaseSerializer(cases_for(request.user).get(pk=case.pk)).data)

    # evidence of the case: list and upload -------------------------------------------------------------

    @extend_schema(methods=["GET"], responses=EvidenceSerializer(many=True), tags=["evidence"])
    @extend_schema(
        methods=["POST"],
        request={
            "multipart/form-data": EvidenceUploadSerializer,
            "application/json": EvidenceReferenceSerializer,
        },
        responses={
            201: EvidenceSerializer,
            202: EvidenceReferenceSerializer,
            413: OpenApiResponse(description="The upload is larger than LOWERDIR_MAX_UPLOAD_BYTES."),
        },
        tags=["evidence"],
        description="Upload an archive (multipart `file`, streamed and hashed as it arrives: multi-GB is "
        'fine) → 201; or JSON `{"reference": "host/repo:tag"}` to pull from a registry → 202.',
    )
    @action(
        detail=True,
        methods=["get", "post"],
        parser_classes=[MultiPartParser, JSONParser],
        url_path="evidence",
        pagination_class=ApiViewSet.pagination_class,
    )
    def evidence(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(
                evidence_queryset().filter(case=case).order_by("-uploaded_at", "-pk")
            )
            return self.get_paginated_response(EvidenceSerializer(page, many=True).data)
        if case.my_role not in (Role.LEAD, Role.INVESTIGATOR):
            raise PermissionDenied("Viewers cannot add evidence.")
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

    def get_throttles(self):
        throttles = super().get_throttles()
        request = getattr(self, "request", None)
        if getattr(self, "action", None) == "evidence" and request is not None and request.method == "POST":
            throttles.append(UploadThrottle())
        return throttles

    # findings of the case -------------------------------------------------------------------------------

    @extend_schema(parameters=FINDING_FILTERS, responses=FindingSerializer(many=True), tags=["findings"])
    @action(detail=True, methods=["get"], url_path="findings", serializer_class=FindingSerializer)
    def findings(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        queryset = filters.filter_findings(findings_queryset().filter(case=case), request.query_params)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(FindingSerializer(page, many=True).data)

    @extend_schema(request=BulkTriageSerializer, responses={200: BulkResultSerializer}, tags=["findings"])
    @action(
        detail=True,
        methods=["post"],
        url_path="findings/bulk",
        serializer_class=BulkTriageSerializer,
        parser_classes=[JSONParser],
    )
    def findings_bulk(self, request: Request, pk: str | None = None) -> Response:
        """Triage many findings: by ``ids``, or every finding matching ``filter`` (the list's filters)."""
        case = self.get_object()
        require(case.my_role, write=True)
        body = BulkTriageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "ids" in data:
            ids = sorted(set(data["ids"]))
            known = set()
            for start in range(0, len(ids), 900):
                known.update(
                    Finding.objects.filter(case=case, pk__in=ids[start : start + 900]).values_list(
                        "pk", flat=True
                    )
                )
            if missing := [pk for pk in ids if pk not in known]:
                shown = ", ".join(map(str, missing[:20])) + (" …" if len(missing) > 20 else "")
                raise ValidationError({"ids": [f"Not findings of this case: {shown}"]})
        else:
            params = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in data["filter"].items()}
            ids = list(
                filters.filter_findings(Finding.objects.filter(case=case), params)
                .order_by()
                .values_list("pk", flat=True)
            )
        kwargs = {}
        if "assignee" in data:
            kwargs["assignee"] = member_user(case, data["assignee"])
        updated = (
            actions.triage(
                case,
                request.user,
                ids=ids,
                status=data.get("status"),
                reason=data.get("reason", ""),
                **kwargs,
            )
            if ids
            else 0
        )
        return Response({"updated": updated})


# --- members ---------------------------------------------------------------------------------------------


@extend_schema(tags=["members"])
class MemberViewSet(CaseScopedViewSet):
    """Members of a case and their roles. Everyone on the case reads; the lead adds, changes, removes."""

    serializer_class = MemberSerializer
    lead_actions = frozenset({"create", "partial_update", "destroy"})

    def get_queryset(self):
        if self.schema_only:
            return CaseMembership.objects.none()
        return (
            CaseMembership.objects.filter(case=self.case)
            .select_related("user", "case")
            .order_by("user__username")
        )

    def _membership(self, username: str) -> CaseMembership:
        membership = self.get_queryset().filter(user__username=username).first()
        if membership is None:
            raise NotFound("Not a member of this case.")
        return membership

    def list(self, request: Request, case_id: int) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(responses={201: MemberSerializer})
    def create(self, request: Request, case_id: int) -> Response:
        body = MemberSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = body.validated_data["user"]["username"]
        try:
            membership = actions.add_member(self.case, request.user, user, body.validated_data["role"])
        except actions.ActionError as error:
            raise ValidationError({"username": [str(error)]}) from None
        return Response(MemberSerializer(self._membership(membership.user.username)).data, status=201)

    @extend_schema(request=MemberRoleSerializer, responses=MemberSerializer)
    def partial_update(self, request: Request, case_id: int, username: str) -> Response:
        membership = self._membership(username)
        body = MemberRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            actions.change_role(self.case, request.user, membership, body.validated_data["role"])
        except actions.ActionError as error:
            raise ValidationError({"role": [str(error)]}) from None
        return Response(MemberSerializer(self._membership(username)).data)

    def destroy(self, request: Request, case_id: int, username: str) -> Response:
        membership = self._membership(username)
        actions.remove_member(self.case, request.user, membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- evidence --------------------------------------------------------------------------------------------


@extend_schema(tags=["evidence"])
class EvidenceViewSet(mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = EvidenceSerializer

    def get_queryset(self):
        return visible(self.request.user, evidence_queryset())

    @extend_schema(responses=CustodyEventSerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=CustodyEventSerializer)
    def custody(self, request: Request, pk: str | None = None) -> Response:
        """The chain of custody: received, verified, accessed, exported (oldest first)."""
        evidence = self.get_object()
        events = CustodyEvent.objects.filter(evidence=evidence).select_related("actor").order_by("at", "pk")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(CustodyEventSerializer(page, many=True).data)

    @extend_schema(request=None, responses={200: VerificationSerializer})
    @action(detail=True, methods=["post"], serializer_class=VerificationSerializer)
    def verify(self, request: Request, pk: str | None = None) -> Response:
        """Re-hash the stored bytes; the result (match or not) is recorded on the custody log."""
        evidence = self.get_object()
        require(role_on(request.user, evidence.case_id), write=True)
        event = verify_evidence(evidence, request.user)
        event.actor = request.user
        return Response(VerificationSerializer(event).data)

    @extend_schema(responses=ImageSerializer(many=True), tags=["images"])
    @action(detail=True, methods=["get"], serializer_class=ImageSerializer)
    def images(self, request: Request, pk: str | None = None) -> Response:
        """Images found in this evidence (newest scan first), with their layers."""
        evidence = self.get_object()
        images = (
            Image.objects.filter(scan__evidence=evidence)
            .select_related("scan")
            .defer("config")
            .prefetch_related(Prefetch("layers", queryset=Layer.objects.order_by("index")))
            .order_by("-scan__queued_at", "-scan_id", "pk")
        )
        page = self.paginate_queryset(images)
        return self.get_paginated_response(ImageSerializer(page, many=True).data)


# --- images, layers, files -------------------------------------------------------------------------------

FILE_FILTERS = [
    OpenApiParameter("layer", int, description="only records of this layer (index; 0 = base)"),
    OpenApiParameter("path", str, description="exact path"),
    OpenApiParameter("path_prefix", str, description="path prefix, e.g. /usr/bin/"),
    OpenApiParameter("visible", bool, description="true: the merged filesystem; false: hidden records"),
    OpenApiParameter("change", str, enum=["added", "modified", "deleted"]),
    OpenApiParameter("sha256", str, description="content hash"),
]


@extend_schema(tags=["images"])
class ImageViewSet(mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = ImageDetailSerializer

    def get_queryset(self):
        return visible(self.request.user, Image.objects.select_related("scan")).prefetch_related(
            Prefetch("layers", queryset=Layer.objects.order_by("index"))
        )

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        image = self.get_object()
        image.summary = imageinfo.summary(image)
        image.graveyard_count = FileRecord.objects.filter(image=image, hidden_by__isnull=False).count()
        return Response(ImageDetailSerializer(image).data)

    def _layer(self, image: Image, params) -> Layer | None:
        index = filters.int_param(params, "layer")
        if index is None:
            return None
        layer = next((item for item in image.layers.all() if item.index == index), None)
        if layer is None:
            raise ValidationError({"layer": [f"The image has no layer {index}."]})
        return layer

    @extend_schema(parameters=FILE_FILTERS, responses=FileRecordSerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=FileRecordSerializer)
    def files(self, request: Request, pk: str | None = None) -> Response:
        """File records of the image, by path: every layer, or one; the graveyard included."""
        image = self.get_object()
        params = request.query_params
        records = FileRecord.objects.filter(image=image).select_related("layer")
        if (layer := self._layer(image, params)) is not None:
            records = records.filter(layer=layer)
        if path := params.get("path"):
            records = records.filter(path=filters.no_nul(path, "path"))
        if prefix := params.get("path_prefix"):
            records = records.filter(filters.prefix_q(filters.no_nul(prefix, "path_prefix")))
        if (shown := filters.bool_param(params, "visible")) is not None:
            records = records.filter(visible=shown)
        if change := params.get("change"):
            if change not in ("added", "modified", "deleted"):
                raise ValidationError({"change": ["One of added, modified, deleted."]})
            records = records.filter(change=change)
        if sha := params.get("sha256"):
            records = records.filter(sha256=filters.sha256_value(sha))
        page = self.paginate_queryset(records.order_by("path", "layer__index", "pk"))
        return self.get_paginated_response(FileRecordSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("path_prefix", str, description="path prefix"),
            OpenApiParameter("q", str, description="text anywhere in the path"),
        ],
        responses=FileRecordSerializer(many=True),
    )
    @action(detail=True, methods=["get"], serializer_class=FileRecordSerializer)
    def graveyard(self, request: Request, pk: str | None = None) -> Response:
        """Everything a later layer deleted or shadowed: still in the image, recoverable evidence.
        ``hidden_by`` is the index of the layer that hid it, ``hidden_how`` whiteout/opaque/shadowed."""
        image = self.get_object()
        records = browser.graveyard(image, q=filters.no_nul(request.query_params.get("q", ""), "q"))
        if prefix := request.query_params.get("path_prefix"):
            records = records.filter(filters.prefix_q(filters.no_nul(prefix, "path_prefix")))
        page = self.paginate_queryset(records)
        return self.get_paginated_response(FileRecordSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("path", str, description="the directory (default /)"),
            OpenApiParameter("view", str, enum=list(browser.VIEWS), description="merged (default) or layer"),
            OpenApiParameter("layer", int, description="with view=layer: the layer index (default: top)"),
            OpenApiParameter("offset", int, description="children to skip (500 a page)"),
        ],
        responses=TreeSerializer,
    )
    @action(detail=True, methods=["get"], serializer_class=TreeSerializer, pagination_class=None)
    def tree(self, request: Request, pk: str | None = None) -> Response:
        """One directory of the layer browser: its children with subtree counts (two queries at any size)."""
        image = self.get_object()
        params = request.query_params
        view = params.get("view") or "merged"
        if view not in browser.VIEWS:
            raise ValidationError({"view": ["merged or layer."]})
        layer = None
        if view == "layer":
            layers = list(image.layers.all())
            layer = self._layer(image, params) or (layers[-1] if layers else None)
        path = browser.normalise(filters.no_nul(params.get("path", "/"), "path"))
        offset = filters.int_param(params, "offset") or 0
        children, more = browser.list_directory(image, view=view, layer=layer, path=path, offset=offset)
        return Response(
            TreeSerializer(
                {
                    "path": path,
                    "view": view,
                    "layer_index": layer.index if layer else None,
                    "children": [
                        {
                            **{
                                name: getattr(child, name)
                                for name in (
                                    "name",
                                    "path",
                                    "is_dir",
                                    "entries",
                                    "size",
                                    "added",
                                    "modified",
                                    "deleted",
                                    "hidden",
                                    "flagged",
                                )
                            },
                            "record": child.record,
                        }
                        for child in children
                    ],
                    "more": more,
                    "next_offset": offset + browser.PAGE if more else None,
                }
            ).data
        )


# --- findings --------------------------------------------------------------------------------------------


@extend_schema(tags=["findings"])
class FindingViewSet(mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = FindingDetailSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        comments = Prefetch("comments", queryset=FindingComment.objects.select_related("author"))
        return visible(self.request.user, findings_queryset()).prefetch_related(comments)

    @extend_schema(request=TriageSerializer, responses=FindingDetailSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Triage: status (a reason is required for false_positive and accepted), assignee, a note."""
        finding = self.get_object()
        case = finding.case
        require(role_on(request.user, case.pk), write=True)
        body = TriageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        kwargs = {}
        if "assignee" in data:
            kwargs["assignee"] = member_user(case, data["assignee"])
        with transaction.atomic():
            if "status" in data or "assignee" in data or data.get("reason"):
                actions.triage(
                    case,
                    request.user,
                    ids=[finding.pk],
                    status=data.get("status"),
                    reason=data.get("reason", ""),
                    **kwargs,
                )
            if data.get("note", "").strip():
                actions.comment(case, request.user, finding, data["note"])
        return Response(FindingDetailSerializer(self.get_queryset().get(pk=finding.pk)).data)


__all__ = [
    "CaseViewSet",
    "EvidenceViewSet",
    "FindingViewSet",
    "ImageViewSet",
    "MemberViewSet",
]
