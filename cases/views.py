"""The case list and the case page's overview and evidence tabs."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from scanner.models import ScanRun, TriageStatus

from .custody import verify_evidence
from .forms import CaseFilterForm, CaseForm, EvidenceForm, MemberForm, NarrativeForm, StatusForm
from .intake import client_address, receive_evidence
from .models import Case, CaseMembership, CustodyEvent, Evidence, Role, Severity
from .playbooks import find_case_template
from .workspace import actions, queries
from .workspace.charts import layer_chart, severity_chart
from .workspace.context import tab_context
from .workspace.perms import case_view, require_write


@login_required
@require_http_methods(["GET", "POST"])
def case_list(request: HttpRequest) -> HttpResponse:
    form = CaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        spec = find_case_template(form.cleaned_data["template"]) if form.cleaned_data["template"] else None
        severity = form.cleaned_data["severity"] or (spec.severity if spec else Severity.MEDIUM)
        case = Case.open_case(
            lead=request.user,
            title=form.cleaned_data["title"],
            summary=form.cleaned_data["summary"],
            severity=severity,
            template=spec.key if spec else "",
        )
        if spec:
            actions.apply_case_template(case, request.user, spec)
        messages.success(request, f"Opened {case.key}")
        return redirect(case)
    visible = Case.objects.visible_to(request.user)
    leads = (
        get_user_model()
        .objects.filter(led_cases__in=visible)
        .distinct()
        .order_by("username")
        .values_list("pk", "username")
    )
    filters = CaseFilterForm(request.GET or None, leads=list(leads))
    cases = visible.select_related("lead").annotate(
        evidence_count=Count("evidence", distinct=True),
        open_count=Count("findings", filter=Q(findings__status="open"), distinct=True),
    )
    if filters.is_valid():
        data = filters.cleaned_data
        if data["q"]:
            cases = cases.filter(
                Q(key__icontains=data["q"]) | Q(title__icontains=data["q"]) | Q(summary__icontains=data["q"])
            )
        if data["status"]:
            cases = cases.filter(status=data["status"])
        if data["severity"]:
            cases = cases.filter(severity=data["severity"])
        if data["lead"]:
            cases = cases.filter(lead_id=data["lead"])
    page = Paginator(cases.order_by("-created_at"), 50).get_page(request.GET.get("page"))
    return render(request, "cases/case_list.html", {"page": page, "form": form, "filters": filters})


@case_view()
def case_detail(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    """The overview tab: the case at a glance, the narrative for the post-mortem, and the images."""
    counts = queries.severity_counts(case)
    scans = queries.latest_scans(case)
    flagged = queries.flagged_layers(case)
    context = tab_context(
        case,
        role,
        "overview",
        counts=counts,
        severity_chart=severity_chart({name: c["total"] for name, c in counts.items()}),
        open_by_severity=[(name, c["open"]) for name, c in counts.items() if c["open"]],
        total_findings=sum(c["total"] for c in counts.values()),
        status_counts=[(TriageStatus(k).label, n) for k, n in queries.status_counts(case).items()],
        progress=queries.checklist_progress(case),
        scans=scans,
        charts=_image_charts(scans, flagged),
        flagged=flagged,
        memberships=case.memberships.select_related("user").order_by("user__username"),
        status_form=StatusForm(initial={"status": case.status}),
        narrative_form=NarrativeForm(instance=case, lead=role == Role.LEAD),
        member_form=MemberForm(),
        roles=Role.choices,
    )
    return render(request, "cases/overview.html", context)


@case_view()
def case_images(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    """The images section alone, fetched by the page when a scan finishes."""
    scans = queries.latest_scans(case)
    charts = _image_charts(scans, queries.flagged_layers(case))
    return render(request, "cases/_images.html", {"case": case, "scans": scans, "charts": charts})


def _image_charts(scans, flagged: dict) -> list[tuple]:
    """(run, image, layer chart) for every image of the latest scans, as the images section shows them."""
    return [
        (run, image, layer_chart(image.layers.all(), flagged)) for run in scans for image in run.images.all()
    ]


def _evidence_rows(case: Case):
    runs = Prefetch("scans", queryset=ScanRun.objects.order_by("-queued_at", "-pk"))
    custody = Prefetch(
        "custody_events", queryset=CustodyEvent.objects.select_related("actor").order_by("at", "pk")
    )
    evidence = list(
        case.evidence.select_related("uploaded_by")
        .prefetch_related(runs, custody)
        .order_by("-uploaded_at", "-pk")
    )
    for item in evidence:
        scans = list(item.scans.all())
        item.latest_scan = scans[0] if scans else None
    return evidence


@case_view()
@require_http_methods(["GET", "POST"])
def evidence_tab(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    if request.method == "POST":
        return _upload(request, case, role)
    context = tab_context(case, role, "evidence", evidence=_evidence_rows(case), upload_form=EvidenceForm())
    return render(request, "cases/evidence.html", context)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _upload(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    require_write(role)
    form = EvidenceForm(request.POST, request.FILES)
    if not form.is_valid():
        problem = " ".join(form.non_field_errors()) or "Choose a file to upload."
        if _wants_json(request):
            return JsonResponse({"detail": problem}, status=400)
        messages.error(request, problem)
        return redirect("cases:evidence", case.pk)
    if form.cleaned_data["reference"]:
        return _queue_pull(
            request, case, form.cleaned_data["reference"].strip(), form.cleaned_data["description"]
        )
    evidence = receive_evidence(
        case=case,
        uploaded=form.cleaned_data["file"],
        user=request.user,
        address=client_address(request),
        description=form.cleaned_data["description"],
    )
    if _wants_json(request):
        return JsonResponse(
            {
                "id": evidence.pk,
                "sha256": evidence.sha256,
                "size": evidence.size,
                "name": evidence.original_name,
                "url": reverse("cases:evidence", args=[case.pk]),
            },
            status=201,
        )
    messages.success(
        request, f"Received {evidence.original_name}: SHA-256 {evidence.sha256}, {evidence.size:,} bytes"
    )
    return redirect("cases:evidence", case.pk)


def _queue_pull(request: HttpRequest, case: Case, reference: str, description: str) -> HttpResponse:
    """Check the reference against the registry policy now; a worker pulls it once the request commits."""
    from scanner.engine.model import ScanError
    from scanner.pull import check_reference, pull_reference

    try:
        reference = check_reference(reference)
    except ScanError as error:
        messages.error(request, f"Cannot pull {reference}: {error}")
        return redirect("cases:evidence", case.pk)
    case_id, user_id = case.pk, request.user.pk
    transaction.on_commit(lambda: pull_reference.delay(case_id, reference, user_id, description))
    messages.success(request, f"Pulling {reference}: the evidence appears here when the pull finishes.")
    return redirect("cases:evidence", case.pk)


@case_view(write=True)
@require_POST
def evidence_verify(request: HttpRequest, case: Case, role: str, evidence_id: int) -> HttpResponse:
    """Re-hash the stored blob and record the result on the custody log (match or mismatch)."""
    evidence = get_object_or_404(Evidence, pk=evidence_id, case=case)
    event = verify_evidence(evidence, request.user)
    match, actual, error = event.detail["match"], event.detail["actual"], event.detail.get("error", "")
    if match:
        messages.success(
            request, f"{evidence.original_name}: the stored bytes still hash to {evidence.sha256}."
        )
    else:
        messages.error(
            request, f"{evidence.original_name}: VERIFICATION FAILED. {error or f'now hashes to {actual}'}"
        )
    return redirect("cases:evidence", case.pk)


@case_view(write=True)
@require_POST
def case_status(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    form = StatusForm(request.POST)
    if form.is_valid():
        try:
            if actions.change_status(case, request.user, form.cleaned_data["status"], role=role):
                messages.success(request, f"Status is now {case.get_status_display()}.")
        except actions.ActionError as error:
            messages.error(request, str(error))
    return redirect(case)


@case_view(write=True)
@require_POST
def case_edit(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    form = NarrativeForm(request.POST, instance=Case.objects.get(pk=case.pk), lead=role == Role.LEAD)
    if form.is_valid():
        changed = actions.update_case(
            case, request.user, {k: form.cleaned_data[k] for k in form.changed_data}, role=role
        )
        if changed:
            messages.success(
                request, "Saved: " + ", ".join(form.fields[name].label or name for name in changed)
            )
    else:
        messages.error(
            request, "Not saved: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        )
    return redirect(reverse("cases:detail", args=[case.pk]) + "#narrative")


@case_view(lead=True)
@require_POST
def case_members(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    """Lead only: add a member, change a member's role, remove a member, hand over the lead."""
    op = request.POST.get("op", "add")
    try:
        if op == "add":
            form = MemberForm(request.POST)
            if not form.is_valid():
                raise actions.ActionError("; ".join(" ".join(v) for v in form.errors.values()))
            actions.add_member(case, request.user, form.cleaned_data["username"], form.cleaned_data["role"])
            messages.success(request, f"Added {form.cleaned_data['username'].username}.")
        else:
            membership = get_object_or_404(
                CaseMembership.objects.select_related("user"), case=case, pk=request.POST.get("membership")
            )
            if op == "role":
                actions.change_role(case, request.user, membership, request.POST.get("role", ""))
            elif op == "remove":
                actions.remove_member(case, request.user, membership)
            elif op == "lead":
                actions.set_lead(case, request.user, membership.user)
            messages.success(request, "Members updated.")
    except actions.ActionError as error:
        messages.error(request, str(error))
    return redirect(reverse("cases:detail", args=[case.pk]) + "#members")
