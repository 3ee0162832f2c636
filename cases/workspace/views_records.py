"""Timeline, notes, checklists and the audit log."""

from __future__ import annotations

import difflib

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from scanner.models import Finding

from ..forms import ChecklistAddForm, ItemForm, NewItemForm, NoteForm, TimelineEntryForm
from ..models import (
    AuditEvent,
    Case,
    Checklist,
    ChecklistItem,
    Note,
    NoteRevision,
    TimelineEvent,
    TimelineKind,
)
from ..playbooks import checklist_templates
from . import actions, audit, timeline
from .context import members, tab_context
from .perms import case_view, is_htmx, require_write
from .suggestions import suggestions

# --- timeline --------------------------------------------------------------------------------------------


def _entry_form(case: Case, data=None, **kwargs) -> TimelineEntryForm:
    return TimelineEntryForm(data, evidence=list(case.evidence.order_by("uploaded_at")), **kwargs)


def _linked(case: Case, form: TimelineEntryForm):
    findings = list(Finding.objects.filter(case=case, pk__in=form.cleaned_data["findings"]))
    missing = set(form.cleaned_data["findings"]) - {f.pk for f in findings}
    if missing:
        form.add_error("findings", f"Not findings of this case: {', '.join(map(str, sorted(missing)))}")
    evidence = list(case.evidence.filter(pk__in=[int(pk) for pk in form.cleaned_data["evidence"]]))
    return findings, evidence


@case_view()
@require_http_methods(["GET", "POST"])
def timeline_tab(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    form = _entry_form(
        case,
        initial={
            "occurred_at": timezone.now().strftime("%Y-%m-%d %H:%M:%S"),
            "findings": request.GET.get("finding", ""),
        },
    )
    if request.method == "POST":
        require_write(role)
        form = _entry_form(case, request.POST)
        if form.is_valid():
            findings, evidence = _linked(case, form)
            if form.is_valid():
                actions.add_timeline_entry(
                    case,
                    request.user,
                    occurred_at=form.cleaned_data["occurred_at"],
                    title=form.cleaned_data["title"],
                    body=form.cleaned_data["body"],
                    kind=form.cleaned_data["kind"] or TimelineKind.MANUAL,
                    findings=findings,
                    evidence=evidence,
                )
                messages.success(request, "Added to the timeline.")
                return redirect("cases:timeline", case.pk)
    kinds = {k for k in request.GET.getlist("kind") if k in TimelineKind.values}
    entries = timeline.build(case, kinds or None)
    page = Paginator(entries, 200).get_page(request.GET.get("page"))
    context = tab_context(case, role, "timeline", page=page, kinds=timeline.KINDS, selected=kinds, form=form)
    return render(request, "cases/timeline.html", context)


@case_view(write=True)
@require_http_methods(["GET", "POST"])
def timeline_edit(request: HttpRequest, case: Case, role: str, event_id: int) -> HttpResponse:
    event = get_object_or_404(
        TimelineEvent, pk=event_id, case=case, kind__in=[TimelineKind.MANUAL, TimelineKind.HEADING]
    )
    form = _entry_form(
        case,
        request.POST or None,
        initial={
            "occurred_at": event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            "title": event.title,
            "body": event.body,
            "kind": event.kind,
            "findings": ", ".join(str(pk) for pk in event.findings.values_list("pk", flat=True)),
            "evidence": [str(pk) for pk in event.evidence.values_list("pk", flat=True)],
        },
    )
    if request.method == "POST" and form.is_valid():
        findings, evidence = _linked(case, form)
        if form.is_valid():
            actions.edit_timeline_entry(
                case,
                request.user,
                event,
                occurred_at=form.cleaned_data["occurred_at"],
                title=form.cleaned_data["title"],
                body=form.cleaned_data["body"],
            )
            event.findings.set(findings)
            event.evidence.set(evidence)
            messages.success(request, "Timeline entry saved.")
            return redirect("cases:timeline", case.pk)
    return render(
        request,
        "cases/timeline_edit.html",
        {**tab_context(case, role, "timeline"), "form": form, "event": event},
    )


# --- notes -----------------------------------------------------------------------------------------------


@case_view()
@require_http_methods(["GET", "POST"])
def notes_tab(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    form = NoteForm()
    if request.method == "POST":
        require_write(role)
        form = NoteForm(request.POST)
        if form.is_valid():
            note = actions.save_note(
                case, request.user, title=form.cleaned_data["title"], body=form.cleaned_data["body"]
            )
            messages.success(request, "Note saved.")
            return redirect(reverse("cases:notes", args=[case.pk]) + f"#note-{note.pk}")
    notes = (
        Note.objects.filter(case=case)
        .select_related("author", "updated_by")
        .annotate(revision_count=Count("revisions"))
    )
    return render(
        request, "cases/notes.html", {**tab_context(case, role, "notes"), "notes": notes, "form": form}
    )


@case_view()
@require_http_methods(["GET", "POST"])
def note_detail(request: HttpRequest, case: Case, role: str, note_id: int) -> HttpResponse:
    """A note's edit form (members who may write) and its full edit history with a diff per revision."""
    note = get_object_or_404(Note.objects.select_related("author", "updated_by"), pk=note_id, case=case)
    form = NoteForm(initial={"title": note.title, "body": note.body})
    if request.method == "POST":
        require_write(role)
        form = NoteForm(request.POST)
        if form.is_valid():
            actions.save_note(
                case,
                request.user,
                title=form.cleaned_data["title"],
                body=form.cleaned_data["body"],
                note=note,
            )
            messages.success(request, "Note saved; the previous version is kept in its history.")
            return redirect("cases:note", case.pk, note.pk)
    revisions = list(NoteRevision.objects.filter(note=note).select_related("editor"))
    previous = ""
    for revision in revisions:
        revision.diff = [
            line
            for line in difflib.unified_diff(
                previous.splitlines(), revision.body.splitlines(), lineterm="", n=1
            )
            if not line.startswith(("---", "+++"))
        ]
        previous = revision.body
    revisions.reverse()
    return render(
        request,
        "cases/note.html",
        {**tab_context(case, role, "notes"), "note": note, "form": form, "revisions": revisions},
    )


# --- checklists ------------------------------------------------------------------------------------------


def _checklists(case: Case):
    items = Prefetch("items", queryset=ChecklistItem.objects.select_related("owner", "done_by", "finding"))
    return (
        Checklist.objects.filter(case=case)
        .prefetch_related(items)
        .annotate(total=Count("items"), done=Count("items", filter=Q(items__done=True)))
    )


@case_view()
@require_http_methods(["GET", "POST"])
def checklists_tab(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    if request.method == "POST":
        require_write(role)
        form = ChecklistAddForm(request.POST)
        if form.is_valid():
            checklist = actions.add_checklist(case, request.user, form.cleaned_data["template"])
            messages.success(request, f"Added the “{checklist.title}” checklist.")
            return redirect(reverse("cases:checklists", args=[case.pk]) + f"#checklist-{checklist.pk}")
    team = members(case)
    checklists = list(_checklists(case))
    refreshable = {slug for slug, t in checklist_templates().items() if any(i.for_each for i in t.items)}
    for checklist in checklists:
        checklist.percent = round(100 * checklist.done / checklist.total) if checklist.total else 0
        checklist.refreshable = checklist.slug in refreshable
    present = {c.slug for c in checklists}
    context = {
        **tab_context(case, role, "checklists"),
        "checklists": checklists,
        "members": team,
        "add_form": ChecklistAddForm(),
        "templates": checklist_templates(),
        "present": present,
        "suggestions": suggestions(case),
        "today": timezone.now().date(),
    }
    return render(request, "cases/checklists.html", context)


def _item_response(
    request: HttpRequest, case: Case, role: str, item: ChecklistItem, error: str = ""
) -> HttpResponse:
    if is_htmx(request):
        item = ChecklistItem.objects.select_related("owner", "done_by", "finding", "checklist").get(
            pk=item.pk
        )
        counts = item.checklist.items.aggregate(total=Count("pk"), done=Count("pk", filter=Q(done=True)))
        item.checklist.total, item.checklist.done = counts["total"], counts["done"]
        item.checklist.percent = round(100 * counts["done"] / counts["total"]) if counts["total"] else 0
        return render(
            request,
            "cases/checklists/_item.html",
            {
                "case": case,
                "item": item,
                "can_write": True,
                "members": members(case),
                "error": error,
                "oob_progress": True,
                "today": timezone.now().date(),
            },
        )
    if error:
        messages.error(request, error)
    return redirect(reverse("cases:checklists", args=[case.pk]) + f"#item-{item.pk}")


@case_view(write=True)
@require_POST
def checklist_item(request: HttpRequest, case: Case, role: str, item_id: int) -> HttpResponse:
    item = get_object_or_404(
        ChecklistItem.objects.select_related("checklist", "owner"), pk=item_id, checklist__case=case
    )
    team = members(case)
    op = request.POST.get("op", "save")
    changes: dict = {}
    if op == "toggle":
        changes["done"] = not item.done
    else:
        form = ItemForm(request.POST, members=team)
        if not form.is_valid():
            return _item_response(request, case, role, item, "Not saved: check the due date.")
        data = form.cleaned_data
        changes = {
            "owner": next((u for u in team if str(u.pk) == data["owner"]), None),
            "due": data["due"],
            "note": data["note"],
            "done": data["done"],
        }
    actions.update_item(case, request.user, item, changes)
    return _item_response(request, case, role, item)


@case_view(write=True)
@require_POST
def checklist_add_item(request: HttpRequest, case: Case, role: str, checklist_id: int) -> HttpResponse:
    checklist = get_object_or_404(Checklist, pk=checklist_id, case=case)
    form = NewItemForm(request.POST)
    if form.is_valid():
        actions.add_item(case, request.user, checklist, form.cleaned_data["text"])
    return redirect(reverse("cases:checklists", args=[case.pk]) + f"#checklist-{checklist.pk}")


@case_view(write=True)
@require_POST
def checklist_refresh(request: HttpRequest, case: Case, role: str, checklist_id: int) -> HttpResponse:
    checklist = get_object_or_404(Checklist, pk=checklist_id, case=case)
    added = actions.refresh_checklist(case, request.user, checklist)
    if added:
        messages.success(request, f"Added {added} item{'s' if added != 1 else ''} for the scanned images.")
    else:
        messages.info(request, "Nothing to add: every tag and digest already has its item.")
    return redirect(reverse("cases:checklists", args=[case.pk]) + f"#checklist-{checklist.pk}")


@case_view(write=True)
@require_POST
def checklist_accept(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    """Put a suggested item (proposed by a finding) on its checklist, adding the checklist if needed."""
    key = request.POST.get("key", "")
    suggestion = next((s for s in suggestions(case) if s.key == key), None)
    if suggestion is None:
        messages.error(request, "That suggestion is no longer open.")
        return redirect("cases:checklists", case.pk)
    checklist = Checklist.objects.filter(case=case, slug=suggestion.checklist).first()
    if checklist is None:
        checklist = actions.add_checklist(case, request.user, suggestion.checklist)
    item = actions.add_item(
        case,
        request.user,
        checklist,
        suggestion.text,
        finding=suggestion.finding,
        suggestion_key=suggestion.key,
    )
    messages.success(request, f"Added to “{checklist.title}”.")
    return redirect(reverse("cases:checklists", args=[case.pk]) + f"#item-{item.pk}")


# --- audit -----------------------------------------------------------------------------------------------


@case_view()
def audit_tab(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    events = AuditEvent.objects.filter(case=case).select_related("actor").order_by("-pk")
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    verification = None
    scope = request.GET.get("verify", "")
    if scope == "case":
        verification = audit.verify_case(case)
    elif scope == "all" and request.user.is_staff:
        verification = audit.verify_all()  # the whole log spans every case: staff only
    return render(
        request,
        "cases/audit.html",
        {**tab_context(case, role, "audit"), "page": page, "verification": verification},
    )
