"""Post-mortem views: the Export tab, the HTML preview, the exports themselves and their records.

``/cases/{id}/postmortem.pdf`` (and ``.md``, ``.json``) is a DESIGN §5 contract: session *or* token auth
(``Authorization: Token …``), so CI and scripts can fetch it; a non-member gets 404 like everywhere else.
Every member may export, viewers included (an export reads the case; it carries no evidence bytes).

A small case answers with the document itself. A PDF of a large case is rendered by a worker: browsers
are redirected to the export's page, which refreshes until it is done; API clients get
``202 Accepted`` with the export's URL in ``Location`` and a JSON body to poll.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from ..access import get_case_for
from ..models import AuditEvent, Case, ExportFormat, ExportRecord, ExportStatus
from ..workspace.context import tab_context
from ..workspace.perms import case_view
from . import context, exports
from . import render as render_document

log = logging.getLogger(__name__)


def _authenticate(request: HttpRequest):
    """The session's user, else the user of a valid ``Authorization: Token …`` header, else None."""
    if request.user.is_authenticated:
        return request.user
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    try:
        result = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    if result is None:
        return None
    request.user = result[0]
    return result[0]


def _prefers_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def member_view(view):
    """``view(request, case, role, ...)`` reached by ``(request, case_id, ...)``: session or token auth
    (401 for API clients, the login page for browsers), and 404 for non-members."""

    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, case_id: int, *args, **kwargs) -> HttpResponse:
        user = _authenticate(request)
        if user is None:
            if "HTTP_AUTHORIZATION" in request.META or "text/html" not in request.headers.get("Accept", ""):
                response = JsonResponse(
                    {"detail": "Authentication credentials were not provided."}, status=401
                )
                response["WWW-Authenticate"] = "Token"
                return response
            return redirect_to_login(request.get_full_path())
        case, role = get_case_for(user, case_id)
        return view(request, case, role, *args, **kwargs)

    return wrapper


def _options(request: HttpRequest) -> tuple[str, str | None]:
    tlp = request.GET.get("tlp", "")
    classification = request.GET.get("classification")
    return tlp, classification


def _file_response(record: ExportRecord, data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type=exports.CONTENT_TYPES[record.format])
    response["Content-Disposition"] = f'attachment; filename="{record.filename}"'
    response["X-Content-SHA256"] = record.sha256
    digest = base64.b64encode(bytes.fromhex(record.sha256)).decode()
    response["Repr-Digest"] = f"sha-256=:{digest}:"  # RFC 9530
    response["X-Lowerdir-Export"] = str(record.pk)
    response["Cache-Control"] = "private, no-store"
    return response


def _failed(request: HttpRequest, record: ExportRecord, status: int = 500) -> HttpResponse:
    record.refresh_from_db()
    if _prefers_json(request) or "text/html" not in request.headers.get("Accept", ""):
        return JsonResponse(exports.describe(record), status=status)
    return render(
        request,
        "postmortem/export_detail.html",
        {**tab_context(record.case, "", "postmortem"), "export": record},
        status=status,
    )


@member_view
def export(request: HttpRequest, case: Case, role: str, fmt: str) -> HttpResponse:
    """GET /cases/{id}/postmortem.{pdf,md,json}: export now (or queue it), record it, return it."""
    if fmt not in ExportFormat.values:
        return HttpResponse(status=404)
    tlp, classification = _options(request)
    record = exports.request_export(case, request.user, fmt, tlp=tlp, classification=classification)
    if exports.runs_inline(case, fmt):
        try:
            record, data = exports.run_inline(record)
        except Exception:  # noqa: BLE001 - recorded on the export (status failed, error, audit event)
            return _failed(request, record)
        return _file_response(record, data)
    exports.queue(record)
    if "text/html" in request.headers.get("Accept", ""):
        return redirect(reverse("cases:export", args=[case.pk, record.pk]), permanent=False)
    response = JsonResponse(exports.describe(record), status=202)
    response["Location"] = reverse("cases:export", args=[case.pk, record.pk])
    response["Retry-After"] = "2"
    return response


@member_view
def export_detail(request: HttpRequest, case: Case, role: str, export_id: int) -> HttpResponse:
    """One export: status and progress (JSON for API clients; a page that refreshes itself otherwise)."""
    record = get_object_or_404(
        ExportRecord.objects.select_related("requested_by", "case"), case=case, pk=export_id
    )
    if _prefers_json(request) or "text/html" not in request.headers.get("Accept", ""):
        return JsonResponse(exports.describe(record))
    response = render(
        request, "postmortem/export_detail.html", {**tab_context(case, role, "postmortem"), "export": record}
    )
    if not record.done:
        response["Refresh"] = "2"  # no script needed (CSP): the browser reloads until the export is done
    return response


@member_view
def export_download(request: HttpRequest, case: Case, role: str, export_id: int) -> HttpResponse:
    """The stored bytes of a finished export, checked against the recorded SHA-256 before they go out."""
    record = get_object_or_404(ExportRecord.objects.select_related("case"), case=case, pk=export_id)
    if record.status != ExportStatus.DONE:
        return JsonResponse(exports.describe(record), status=409)
    data = exports.read(record)
    if hashlib.sha256(data).hexdigest() != record.sha256:
        log.error("export %s: stored bytes do not match the recorded SHA-256", record.pk)
        AuditEvent.record(
            case=case, actor=request.user, action="postmortem.mismatch", data={"export": record.pk}
        )
        return HttpResponse(
            "The stored export does not match its recorded SHA-256; it was not sent.",
            status=500,
            content_type="text/plain; charset=utf-8",
        )
    AuditEvent.record(
        case=case,
        actor=request.user,
        action="postmortem.downloaded",
        data={"export": record.pk, "format": record.format, "sha256": record.sha256},
    )
    return _file_response(record, data)


def _links(case: Case, request: HttpRequest) -> dict:
    query = request.GET.urlencode()
    suffix = f"?{query}" if query else ""
    return {
        "back": reverse("cases:postmortem", args=[case.pk]),
        "pdf": reverse("cases:postmortem_pdf", args=[case.pk]) + suffix,
        "md": reverse("cases:postmortem_md", args=[case.pk]) + suffix,
        "json": reverse("cases:postmortem_json", args=[case.pk]) + suffix,
    }


@require_GET
@case_view()
def preview(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    """The document as HTML in the browser: exactly what the PDF is printed from (not recorded)."""
    tlp, classification = _options(request)
    pm = context.build(
        case,
        user=request.user,
        tlp=context.normalise_tlp(tlp, exports.default_tlp()),
        classification=exports.default_classification() if classification is None else classification[:100],
    )
    return HttpResponse(render_document.html(pm, preview=True, links=_links(case, request)))


@require_GET
@case_view()
def export_tab(request: HttpRequest, case: Case, role: str) -> HttpResponse:
    """The Post-mortem tab: export form, what the document will cover, and every past export's hash."""
    records = list(ExportRecord.objects.filter(case=case).select_related("requested_by")[:200])
    size = context.size_of(case)
    response = render(
        request,
        "postmortem/export.html",
        {
            **tab_context(case, role, "postmortem"),
            "exports": records,
            "tlps": [(key, label) for key, (label, _d) in context.TLP.items()],
            "default_tlp": exports.default_tlp(),
            "default_classification": exports.default_classification(),
            "size": size,
            "inline_max": exports.inline_max(),
            "background": size > exports.inline_max(),
            "sections": context.SECTIONS,
        },
    )
    if any(not record.done for record in records):
        response["Refresh"] = "3"
    return response
