from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from scanner.models import Image, Layer, ScanRun

from .access import CAN_WRITE, get_case_for
from .forms import CaseForm, EvidenceForm
from .intake import client_address, receive_evidence
from .models import Case

@login_required
@require_http_methods(["GET", "POST"])
def case_list(request: HttpRequest) -> HttpResponse:
    form = CaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        case = Case.open_case(lead=request.user, **form.cleaned_data)
        messages.success(request, f"Opened {case.key}")
        return redirect(case)
    cases = (
        Case.objects.visible_to(request.user)
        .select_related("lead")
        .annotate(evidence_count=Count("evidence", distinct=True))
    )
    page = Paginator(cases, 50).get_page(request.GET.get("page"))
    return render(request, "cases/case_list.html", {"page": page, "form": form})

def _scans_with_images(case: Case):
    layers = Prefetch("layers", queryset=Layer.objects.order_by("index"))
    images = Prefetch("images", queryset=Image.objects.prefetch_related(layers))
    return (
        ScanRun.objects.filter(evidence__case=case)
        .select_related("evidence", "evidence__uploaded_by")
        .prefetch_related(images)
        .order_by("-queued_at", "-pk")
    )

def _latest_scans(case: Case) -> list[ScanRun]:
    """The newest scan of each evidence item, newest evidence first."""
    latest: dict[int, ScanRun] = {}
    for run in _scans_with_images(case):
        latest.setdefault(run.evidence_id, run)
    return list(latest.values())

@login_required
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    case, role = get_case_for(request.user, case_id)
    context = {
        "case": case,
        "role": role,
        "can_write": role in CAN_WRITE,
        "scans": _latest_scans(case),
        "members": case.memberships.select_related("user").order_by("user__username"),
        "upload_form": EvidenceForm(),
    }
    return render(request, "cases/case_detail.html", context)

@login_required
def case_images(request: HttpRequest, case_id: int) -> HttpResponse:
    """The images section alone, fetched by the page when a scan finishes."""
    case, _role = get_case_for(request.user, case_id)
    return render(request, "cases/_images.html", {"case": case, "scans": _latest_scans(case)})

@login_required
@require_POST
def evidence_upload(request: HttpRequest, case_id: int) -> HttpResponse:
    case, role = get_case_for(request.user, case_id)
    if role not in CAN_WRITE:
        raise PermissionDenied("Viewers cannot add evidence")
    form = EvidenceForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a file to upload.")
        return redirect(case)
    evidence = receive_evidence(
        case=case, uploaded=form.cleaned_data["file"], user=request.user,
        address=client_address(request), description=form.cleaned_data["description"],
    )
    messages.success(request, f"Received {evidence.original_name}: SHA-256 {evidence.sha256}, {evidence.size:,} bytes")
    return redirect(case)
