"""Timeline entries, notes and checklists of a case: members read; investigators and the lead write
(through :mod:`cases.workspace.actions`, audited like the UI's changes)."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from scanner.models import Finding

from ..models import (
    Checklist,
    ChecklistItem,
    Evidence,
    Note,
    NoteRevision,
    TimelineEvent,
    TimelineKind,
)
from ..playbooks import checklist_templates
from ..workspace import actions
from . import filters
from .base import ApiViewSet, CaseScopedViewSet
from .serializers import (
    EDITABLE_KINDS,
    ChecklistItemSerializer,
    ChecklistItemUpdateSerializer,
    ChecklistSerializer,
    ChecklistTemplateSerializer,
    NewChecklistItemSerializer,
    NoteRevisionSerializer,
    NoteSerializer,
    TimelineEventSerializer,
    TimelineWriteSerializer,
)
from .views import member_user

# --- timeline --------------------------------------------------------------------------------------------


@extend_schema(tags=["timeline"])
class TimelineViewSet(CaseScopedViewSet):
    """Stored timeline entries (status changes, triage decisions, checklist items done, manual entries,
    headings), oldest first. Manual entries and headings can be added, edited and deleted; the others are
    the record of what people did and are read-only. (The case page also shows entries derived from the
    image history, custody events and scans; they are not stored and are read from their own endpoints.)"""

    serializer_class = TimelineEventSerializer

    def get_queryset(self):
        if self.schema_only:
            return TimelineEvent.objects.none()
        return (
            TimelineEvent.objects.filter(case=self.case)
            .select_related("author")
            .prefetch_related(
                Prefetch("findings", queryset=Finding.objects.only("pk")),
                Prefetch("evidence", queryset=Evidence.objects.only("pk")),
            )
            .order_by("occurred_at", "pk")
        )

    def _event(self, pk) -> TimelineEvent:
        return get_object_or_404(self.get_queryset(), pk=pk)

    def _links(self, data: dict) -> tuple[list, list]:
        errors = {}
        found = []
        evidence = []
        if ids := sorted(set(data.get("findings") or [])):
            found = list(Finding.objects.filter(case=self.case, pk__in=ids))
            if missing := sorted(set(ids) - {f.pk for f in found}):
                errors["findings"] = [f"Not findings of this case: {', '.join(map(str, missing[:20]))}"]
        if ids := sorted(set(data.get("evidence") or [])):
            evidence = list(Evidence.objects.filter(case=self.case, pk__in=ids))
            if missing := sorted(set(ids) - {e.pk for e in evidence}):
                errors["evidence"] = [f"Not evidence of this case: {', '.join(map(str, missing[:20]))}"]
        if errors:
            raise ValidationError(errors)
        return found, evidence

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, description="comma-separated: " + ",".join(TimelineKind.values))
        ]
    )
    def list(self, request: Request, case_id: int) -> Response:
        events = self.get_queryset()
        if kinds := filters.csv(request.query_params.get("kind")):
            events = events.filter(kind__in=kinds)
        page = self.paginate_queryset(events)
        return self.get_paginated_response(TimelineEventSerializer(page, many=True).data)

    def retrieve(self, request: Request, case_id: int, pk: int) -> Response:
        return Response(TimelineEventSerializer(self._event(pk)).data)

    @extend_schema(request=TimelineWriteSerializer, responses={201: TimelineEventSerializer})
    def create(self, request: Request, case_id: int) -> Response:
        body = TimelineWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        found, evidence = self._links(data)
        event = actions.add_timeline_entry(
            self.case,
            request.user,
            occurred_at=data.get("occurred_at") or timezone.now(),
            title=data["title"],
            body=data["body"],
            kind=data["kind"],
            findings=found,
            evidence=evidence,
        )
        return Response(TimelineEventSerializer(self._event(event.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TimelineWriteSerializer(partial=True), responses=TimelineEventSerializer)
    def partial_update(self, request: Request, case_id: int, pk: int) -> Response:
        event = self._event(pk)
        if event.kind not in EDITABLE_KINDS:
            raise PermissionDenied("Only manual entries and headings can be edited.")
        body = TimelineWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        found, evidence = self._links(data)
        actions.edit_timeline_entry(
            self.case,
            request.user,
            event,
            occurred_at=data.get("occurred_at", event.occurred_at),
            title=data.get("title", event.title),
            body=data.get("body", event.body) if "body" in request.data else event.body,
        )
        if "findings" in data:
            event.findings.set(found)
        if "evidence" in data:
            event.evidence.set(evidence)
        return Response(TimelineEventSerializer(self._event(event.pk)).data)

    def destroy(self, request: Request, case_id: int, pk: int) -> Response:
        event = self._event(pk)
        if event.kind not in EDITABLE_KINDS:
            raise PermissionDenied("Only manual entries and headings can be deleted.")
        actions.delete_timeline_entry(self.case, request.user, event)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- notes -----------------------------------------------------------------------------------------------


@extend_schema(tags=["notes"])
class NoteViewSet(CaseScopedViewSet):
    """Markdown notes (rendered sanitised by the UI). Every save is a revision; notes are not deleted, so
    their history stays whole."""

    serializer_class = NoteSerializer

    def get_queryset(self):
        if self.schema_only:
            return Note.objects.none()
        return (
            Note.objects.filter(case=self.case)
            .select_related("author", "updated_by")
            .annotate(revision_count=Count("revisions"))
            .order_by("-updated_at", "-pk")
        )

    def _note(self, pk) -> Note:
        return get_object_or_404(self.get_queryset(), pk=pk)

    def list(self, request: Request, case_id: int) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(NoteSerializer(page, many=True).data)

    def retrieve(self, request: Request, case_id: int, pk: int) -> Response:
        return Response(NoteSerializer(self._note(pk)).data)

    @extend_schema(responses={201: NoteSerializer})
    def create(self, request: Request, case_id: int) -> Response:
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = actions.save_note(
            self.case,
            request.user,
            title=body.validated_data["title"],
            body=body.validated_data.get("body", ""),
        )
        return Response(NoteSerializer(self._note(note.pk)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, case_id: int, pk: int) -> Response:
        note = self._note(pk)
        body = NoteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        actions.save_note(
            self.case,
            request.user,
            title=body.validated_data.get("title", note.title),
            body=body.validated_data.get("body", note.body),
            note=note,
        )
        return Response(NoteSerializer(self._note(note.pk)).data)

    @extend_schema(responses=NoteRevisionSerializer(many=True))
    def revisions(self, request: Request, case_id: int, pk: int) -> Response:
        """Every saved version of the note, oldest first."""
        note = self._note(pk)
        page = self.paginate_queryset(
            NoteRevision.objects.filter(note=note).select_related("editor").order_by("at", "pk")
        )
        return self.get_paginated_response(NoteRevisionSerializer(page, many=True).data)


# --- checklists ------------------------------------------------------------------------------------------


@extend_schema(tags=["checklists"])
class ChecklistViewSet(CaseScopedViewSet):
    """Checklists from templates (key rotation, registry purge, CI runner wipe, …) with their items."""

    serializer_class = ChecklistSerializer
    write_actions = frozenset({"create", "destroy", "add_item"})

    def get_queryset(self):
        if self.schema_only:
            return Checklist.objects.none()
        items = Prefetch(
            "items",
            queryset=ChecklistItem.objects.select_related("owner", "done_by").order_by("position", "pk"),
        )
        return (
            Checklist.objects.filter(case=self.case)
            .prefetch_related(items)
            .annotate(total=Count("items"), done=Count("items", filter=Q(items__done=True)))
            .order_by("created_at", "pk")
        )

    def _checklist(self, pk) -> Checklist:
        return get_object_or_404(self.get_queryset(), pk=pk)

    def list(self, request: Request, case_id: int) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ChecklistSerializer(page, many=True).data)

    def retrieve(self, request: Request, case_id: int, pk: int) -> Response:
        return Response(ChecklistSerializer(self._checklist(pk)).data)

    @extend_schema(responses={201: ChecklistSerializer})
    def create(self, request: Request, case_id: int) -> Response:
        body = ChecklistSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        slug = body.validated_data["template"]
        if slug not in checklist_templates():
            raise ValidationError({"template": [f"Unknown checklist template {slug!r}."]})
        checklist = actions.add_checklist(self.case, request.user, slug)
        return Response(
            ChecklistSerializer(self._checklist(checklist.pk)).data, status=status.HTTP_201_CREATED
        )

    def destroy(self, request: Request, case_id: int, pk: int) -> Response:
        actions.delete_checklist(self.case, request.user, self._checklist(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=NewChecklistItemSerializer, responses={201: ChecklistItemSerializer})
    def add_item(self, request: Request, case_id: int, pk: int) -> Response:
        checklist = self._checklist(pk)
        body = NewChecklistItemSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding = None
        if (finding_id := body.validated_data.get("finding")) is not None:
            finding = Finding.objects.filter(case=self.case, pk=finding_id).first()
            if finding is None:
                raise ValidationError({"finding": ["Not a finding of this case."]})
        item = actions.add_item(
            self.case, request.user, checklist, body.validated_data["text"], finding=finding
        )
        item = ChecklistItem.objects.select_related("owner", "done_by").get(pk=item.pk)
        return Response(ChecklistItemSerializer(item).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["checklists"])
class ChecklistItemViewSet(CaseScopedViewSet):
    serializer_class = ChecklistItemSerializer

    def _item(self, checklist_id, pk) -> ChecklistItem:
        return get_object_or_404(
            ChecklistItem.objects.select_related("checklist", "owner", "done_by"),
            pk=pk,
            checklist_id=checklist_id,
            checklist__case=self.case,
        )

    def retrieve(self, request: Request, case_id: int, checklist_id: int, pk: int) -> Response:
        return Response(ChecklistItemSerializer(self._item(checklist_id, pk)).data)

    @extend_schema(request=ChecklistItemUpdateSerializer, responses=ChecklistItemSerializer)
    def partial_update(self, request: Request, case_id: int, checklist_id: int, pk: int) -> Response:
        """Edit an item: text, owner (a member, or null), due date, note, done (done by/at are recorded
        and a done item goes on the timeline)."""
        item = self._item(checklist_id, pk)
        body = ChecklistItemUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        if "owner" in changes:
            try:
                changes["owner"] = member_user(self.case, changes["owner"])
            except ValidationError:
                raise ValidationError({"owner": ["Not a member of this case."]}) from None
        if "text" in changes:
            changes["text"] = changes["text"].strip()
            if not changes["text"]:
                raise ValidationError({"text": ["An item needs some text."]})
        actions.update_item(self.case, request.user, item, changes)
        return Response(ChecklistItemSerializer(self._item(checklist_id, pk)).data)

    def destroy(self, request: Request, case_id: int, checklist_id: int, pk: int) -> Response:
        actions.delete_item(self.case, request.user, self._item(checklist_id, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["checklists"])
class ChecklistTemplateViewSet(ApiViewSet):
    """The checklist templates a checklist can be added from (``POST …/checklists/ {"template": slug}``)."""

    serializer_class = ChecklistTemplateSerializer

    def list(self, request: Request) -> Response:
        templates = [
            {
                "slug": t.slug,
                "title": t.title,
                "description": t.description,
                "items": [i.text for i in t.items],
            }
            for t in sorted(checklist_templates().values(), key=lambda t: t.slug)
        ]
        page = self.paginate_queryset(templates)
        return self.get_paginated_response(ChecklistTemplateSerializer(page, many=True).data)
