from django.urls import path
from rest_framework.routers import DefaultRouter

from .views import CaseViewSet, EvidenceViewSet, FindingViewSet, ImageViewSet, MemberViewSet
from .views_exports import ExportViewSet
from .views_records import (
    ChecklistItemViewSet,
    ChecklistTemplateViewSet,
    ChecklistViewSet,
    NoteViewSet,
    TimelineViewSet,
)
from .views_search import SearchViewSet

router = DefaultRouter()
router.register("cases", CaseViewSet, basename="case")
router.register("evidence", EvidenceViewSet, basename="evidence")
router.register("images", ImageViewSet, basename="image")
router.register("findings", FindingViewSet, basename="finding")
router.register("search", SearchViewSet, basename="search")
router.register("checklist-templates", ChecklistTemplateViewSet, basename="checklist-template")

LIST = {"get": "list", "post": "create"}
DETAIL = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}

case = "cases/<int:case_id>/"
urlpatterns = [
    path(case + "members/", MemberViewSet.as_view({"get": "list", "post": "create"}), name="member-list"),
    path(
        case + "members/<str:username>/",
        MemberViewSet.as_view({"patch": "partial_update", "delete": "destroy"}),
        name="member-detail",
    ),
    path(case + "timeline/", TimelineViewSet.as_view(LIST), name="timeline-list"),
    path(case + "timeline/<int:pk>/", TimelineViewSet.as_view(DETAIL), name="timeline-detail"),
    path(case + "notes/", NoteViewSet.as_view(LIST), name="note-list"),
    path(
        case + "notes/<int:pk>/",
        NoteViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="note-detail",
    ),
    path(
        case + "notes/<int:pk>/revisions/", NoteViewSet.as_view({"get": "revisions"}), name="note-revisions"
    ),
    path(case + "checklists/", ChecklistViewSet.as_view(LIST), name="checklist-list"),
    path(
        case + "checklists/<int:pk>/",
        ChecklistViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="checklist-detail",
    ),
    path(
        case + "checklists/<int:pk>/items/",
        ChecklistViewSet.as_view({"post": "add_item"}),
        name="checklist-items",
    ),
    path(
        case + "checklists/<int:checklist_id>/items/<int:pk>/",
        ChecklistItemViewSet.as_view(DETAIL),
        name="checklist-item-detail",
    ),
    path(case + "exports/", ExportViewSet.as_view(LIST), name="export-list"),
    path(case + "exports/<int:pk>/", ExportViewSet.as_view({"get": "retrieve"}), name="export-detail"),
    path(
        case + "exports/<int:pk>/download/",
        ExportViewSet.as_view({"get": "download"}),
        name="export-download",
    ),
    path("search/", SearchViewSet.as_view({"get": "summary"}), name="search-summary"),
    *router.urls,
]
