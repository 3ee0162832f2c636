from django.urls import path

from . import views
from .postmortem import views as postmortem
from .workspace import views_findings as findings
from .workspace import views_image as image
from .workspace import views_records as records

app_name = "cases"

urlpatterns = [
    path("", views.case_list, name="list"),
    path("<int:case_id>/", views.case_detail, name="detail"),
    path("<int:case_id>/status/", views.case_status, name="status"),
    path("<int:case_id>/edit/", views.case_edit, name="edit"),
    path("<int:case_id>/members/", views.case_members, name="members"),
    path("<int:case_id>/images/", views.case_images, name="images"),
    # GET: the evidence tab; POST: upload (both names resolve to the same view)
    path("<int:case_id>/evidence/", views.evidence_tab, name="evidence"),
    path("<int:case_id>/evidence/", views.evidence_tab, name="upload"),
    path("<int:case_id>/evidence/<int:evidence_id>/verify/", views.evidence_verify, name="verify"),
    path("<int:case_id>/image/", image.image_tab, name="image"),
    path("<int:case_id>/image/<int:image_id>/", image.image_tab, name="image_detail"),
    path("<int:case_id>/image/<int:image_id>/tree/", image.image_tree, name="image_tree"),
    path("<int:case_id>/image/<int:image_id>/file/", image.image_file, name="image_file"),
    path("<int:case_id>/image/<int:image_id>/graveyard/", image.image_graveyard, name="graveyard"),
    path("<int:case_id>/files/<int:file_id>/recover/", image.recover_file, name="recover"),
    path("<int:case_id>/findings/", findings.findings_tab, name="findings"),
    path("<int:case_id>/findings/bulk/", findings.findings_bulk, name="findings_bulk"),
    path("<int:case_id>/findings/<int:finding_id>/", findings.finding_detail, name="finding"),
    path("<int:case_id>/findings/<int:finding_id>/triage/", findings.finding_triage, name="triage"),
    path("<int:case_id>/findings/<int:finding_id>/comment/", findings.finding_comment, name="comment"),
    path("<int:case_id>/timeline/", records.timeline_tab, name="timeline"),
    path("<int:case_id>/timeline/<int:event_id>/edit/", records.timeline_edit, name="timeline_edit"),
    path("<int:case_id>/notes/", records.notes_tab, name="notes"),
    path("<int:case_id>/notes/<int:note_id>/", records.note_detail, name="note"),
    path("<int:case_id>/checklists/", records.checklists_tab, name="checklists"),
    path(
        "<int:case_id>/checklists/<int:checklist_id>/items/", records.checklist_add_item, name="checklist_add"
    ),
    path(
        "<int:case_id>/checklists/<int:checklist_id>/refresh/",
        records.checklist_refresh,
        name="checklist_refresh",
    ),
    path("<int:case_id>/checklists/items/<int:item_id>/", records.checklist_item, name="checklist_item"),
    path("<int:case_id>/checklists/suggestions/", records.checklist_accept, name="checklist_accept"),
    path("<int:case_id>/audit/", records.audit_tab, name="audit"),
    # the post-mortem (issue 6): the Export tab, the HTML preview, the exports (DESIGN §5) and their records
    path("<int:case_id>/postmortem/", postmortem.export_tab, name="postmortem"),
    path("<int:case_id>/postmortem.html", postmortem.preview, name="postmortem_html"),
    path("<int:case_id>/postmortem.pdf", postmortem.export, {"fmt": "pdf"}, name="postmortem_pdf"),
    path("<int:case_id>/postmortem.md", postmortem.export, {"fmt": "md"}, name="postmortem_md"),
    path("<int:case_id>/postmortem.json", postmortem.export, {"fmt": "json"}, name="postmortem_json"),
    path("<int:case_id>/exports/<int:export_id>/", postmortem.export_detail, name="export"),
    path(
        "<int:case_id>/exports/<int:export_id>/download/", postmortem.export_download, name="export_download"
    ),
]
