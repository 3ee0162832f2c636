"""The findings tab: filter, sort, paginate; triage inline (htmx) or in bulk; assignee and comments."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from scanner.models import Finding, Layer, TriageStatus

from ..forms import BULK_ACTIONS, BulkForm, CommentForm, TriageForm
from ..models import AuditEvent, Case, ChecklistItem, FindingComment, TimelineEvent
from . import actions
from .context import members, tab_context
from .perms import case_view, is_htmx
from .queries import SEVERITY_ORDER, severity_rank
from .suggestions import suggest

SORTS = {
    "severity": ("-sev_rank", "pk"),
    "-severity": ("sev_rank", "pk"),
    "rule": ("rule_id", "pk"),
    "-rule": ("-rule_id", "-pk"),
    "layer": ("layer__index", "pk"),
    "-layer": ("-layer__index", "-pk"),
    "path": ("path", "pk"),
    "-path": ("-path", "-pk"),
    "status": ("status", "pk"),
    "-status": ("-status", "-pk"),
    "newest": ("-pk",),
    "oldest": ("pk",),
}
PAGE_SIZES = (50, 100, 200)


def filtered(case: Case, params) -> tuple[object, dict]:
    """The case's findings narrowed by the query parameters, and the filters in force."""
    findings = Finding.objects.filter(case=case)
    f = {
        "severity": [s for s in params.getlist("severity") if s in SEVERITY_ORDER],
        "status": [s for s in params.getlist("status") if s in TriageStatus.values],
        "rule": params.get("rule", "").strip(),
        "layer": params.get("layer", "").strip(),
        "assignee": params.get("assignee", "").strip(),
        "q": params.get("q", "").strip(),
    }
    if f["severity"]:
        findings = findings.filter(severity__in=f["severity"])
    if f["status"]:
        findings = findings.filter(status__in=f["status"])
    if f["rule"]:
        findings = findings.filter(rule_id=f["rule"])
    if f["layer"].isdigit():
        findings = findings.filter(layer_id=int(f["layer"]))
    if f["assignee"] == "none":
        findings = findings.filter(assignee__isnull=True)
    elif f["assignee"].isdigit():
        findings = findings.filter(assignee_id=int(f["assignee"]))
    if f["q"]:
        findings = findings.filter(
            Q(path__contains=f["q"]) | Q(title__icontains=f["q"]) | Q(sha256=f["q"].lower())
        )
    return findings, f


def _page(request: HttpRequest, findings):
    sort = request.GET.get("sort", "severity")
    if sort not in SORTS:
        sort = "severity"
    try:
        size = int(request.GET.get("size", 50))
    except ValueError:
        size = 50
    size = size if size in PAGE_SIZES else 50
    ordered = (
        findings.annotate(sev_rank=severity_rank)
        .select_related("layer", "assignee", "image")
        .defer("detail", "excerpt", "remediation", "related", "image__config")
        .order_by(*SORTS[sort])
    )
    return Paginator(ordered, size).get_page(request.GET.get("page")), sort, size


@case_view()
def findings_tab(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    findings, f = filtered(case, request.GET)
    page, sort, size = _page(request, findings)
    team = members(case)
    context = tab_context(
        case,
        role,
        "findings",
        page=page,
        f=f,
        sort=sort,
        size=size,
        page_sizes=PAGE_SIZES,
        severities=SEVERITY_ORDER,
        statuses=TriageStatus.choices,
        rules=list(
            Finding.objects.filter(case=case).order_by("rule_id").values_list("rule_id", flat=True).distinct()
        ),
        layers=list(
            Layer.objects.filter(image__scan__evidence__case=case)
            .select_related("image")
            .only("pk", "index", "image__repo_tags", "image__id")
            .order_by("image_id", "index")
        ),
        members=team,
        bulk_form=BulkForm(members=team),
        bulk_actions=BULK_ACTIONS,
        querystring=request.GET.urlencode(),
    )
    template = "cases/findings/_table.html" if is_htmx(request) else "cases/findings/list.html"
    return render(request, template, context)


def _detail_context(case: Case, role: str, finding: Finding) -> dict:
    team = members(case)
    comments = FindingComment.objects.filter(finding=finding).select_related("author")
    events = TimelineEvent.objects.filter(findings=finding).select_related("author").order_by("occurred_at")
    items = ChecklistItem.objects.filter(finding=finding).select_related("checklist")
    history = (
        AuditEvent.objects.filter(case=case, action="finding.triage", data__findings=finding.pk)
        .select_related("actor")
        .order_by("pk")
    )
    return {
        "case": case,
        "role": role,
        "can_write": role in ("lead", "investigator"),
        "finding": finding,
        "comments": comments,
        "events": events,
        "items": items,
        "history": history,
        "triage_form": TriageForm(
            members=team, initial={"status": finding.status, "assignee": finding.assignee_id or ""}
        ),
        "comment_form": CommentForm(),
        "suggestion": suggest(finding),
        "statuses": TriageStatus.choices,
    }


def _finding(case: Case, finding_id: int) -> Finding:
    return get_object_or_404(
        Finding.objects.select_related("layer", "image", "assignee", "triaged_by", "scan__evidence"),
        pk=finding_id,
        case=case,
    )


@case_view()
def finding_detail(request: HttpRequest, case: Case, role: str, finding_id: int) -> HttpResponse:
    finding = _finding(case, finding_id)
    context = _detail_context(case, role, finding)
    if is_htmx(request):
        return render(request, "cases/findings/_detail.html", context)
    return render(request, "cases/findings/detail.html", {**tab_context(case, role, "findings"), **context})


def _back(request: HttpRequest, case: Case, finding: Finding | None = None) -> HttpResponse:
    target = request.POST.get("next", "")
    if target.startswith(reverse("cases:findings", args=[case.pk])):
        return redirect(target)
    if finding is not None:
        return redirect("cases:finding", case.pk, finding.pk)
    return redirect("cases:findings", case.pk)


@case_view(write=True)
@require_POST
def finding_triage(request: HttpRequest, case: Case, role: str, finding_id: int) -> HttpResponse:
    finding = _finding(case, finding_id)
    team = members(case)
    form = TriageForm(request.POST, members=team)
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        assignee = ...
        if "assignee" in request.POST:
            assignee = next((u for u in team if str(u.pk) == data["assignee"]), None)
        try:
            actions.triage(
                case,
                request.user,
                ids=[finding.pk],
                status=data["status"] or None,
                reason=data["reason"],
                assignee=assignee,
            )
        except actions.ActionError as exc:
            error = str(exc)
    else:
        error = "Invalid triage request."
    finding = _finding(case, finding_id)
    if is_htmx(request):
        target = request.headers.get("HX-Target", "")
        if target.startswith("finding-row-"):
            finding.sev_rank = 0
            return render(
                request,
                "cases/findings/_row.html",
                {"case": case, "can_write": True, "finding": finding, "row_error": error},
            )
        context = _detail_context(case, role, finding)
        context.update(error=error, oob_row=True)  # the row in the table is refreshed out of band
        response = render(request, "cases/findings/_detail.html", context)
        response["HX-Trigger"] = "findingChanged"
        return response
    if error:
        messages.error(request, error)
    return _back(request, case, finding)


@case_view(write=True)
@require_POST
def finding_comment(request: HttpRequest, case: Case, role: str, finding_id: int) -> HttpResponse:
    finding = _finding(case, finding_id)
    form = CommentForm(request.POST)
    error = ""
    if form.is_valid():
        actions.comment(case, request.user, finding, form.cleaned_data["body"])
    else:
        error = "Write a comment first."
    if is_htmx(request):
        context = _detail_context(case, role, finding)
        context["error"] = error
        return render(request, "cases/findings/_detail.html", context)
    if error:
        messages.error(request, error)
    return redirect("cases:finding", case.pk, finding.pk)


@case_view(write=True)
@require_POST
def findings_bulk(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    team = members(case)
    form = BulkForm(request.POST, members=team)
    back = reverse("cases:findings", args=[case.pk]) + "?" + request.POST.get("querystring", "")
    if not form.is_valid():
        messages.error(request, "Choose an action.")
        return redirect(back)
    data = form.cleaned_data
    if data["scope"] == "matching":
        findings, _f = filtered(case, QueryDict(request.POST.get("querystring", "")))
        ids = list(findings.values_list("pk", flat=True))
    else:
        ids = [int(v) for v in request.POST.getlist("ids") if v.isdigit()]
    if not ids:
        messages.error(request, "Select some findings first (tick their boxes, or choose “all matching”).")
        return redirect(back)
    try:
        if data["action"] == "assign":
            assignee = next((u for u in team if str(u.pk) == data["assignee"]), None)
            n = actions.triage(case, request.user, ids=ids, assignee=assignee)
            messages.success(
                request, f"Assigned {n:,} findings to {assignee.username if assignee else 'nobody'}."
            )
        else:
            n = actions.triage(case, request.user, ids=ids, status=data["action"], reason=data["reason"])
            messages.success(request, f"Marked {n:,} findings {TriageStatus(data['action']).label.lower()}.")
    except actions.ActionError as exc:
        messages.error(request, str(exc))
    return redirect(back)
