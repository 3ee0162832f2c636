"""The image tab: config summary, layers table and chart, the layer browser (per layer or merged, one
directory at a time), the graveyard, and recovery of a file's bytes (recorded on the custody log)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from scanner.models import FileRecord, Finding, Image, Layer

from ..models import AuditEvent, Case, CustodyAction, CustodyEvent
from . import browser, imageinfo, queries
from .charts import layer_chart
from .context import tab_context
from .perms import case_view, is_htmx

log = logging.getLogger(__name__)


def _image(case: Case, image_id: int) -> Image:
    image = get_object_or_404(
        Image.objects.select_related("scan__evidence"), pk=image_id, scan__evidence__case=case
    )
    image.evidence = image.scan.evidence
    return image


def _browser_state(request: HttpRequest, image: Image, layers: list[Layer]) -> dict:
    view = request.GET.get("view", "merged")
    if view not in browser.VIEWS:
        view = "merged"
    layer = None
    if view == "layer":
        wanted = request.GET.get("layer", "")
        layer = next((item for item in layers if str(item.index) == wanted), layers[-1] if layers else None)
    path = browser.normalise(request.GET.get("path"))
    try:
        offset = max(0, int(request.GET.get("offset", 0)))
    except ValueError:
        offset = 0
    children, more = browser.list_directory(image, view=view, layer=layer, path=path, offset=offset)
    return {
        "view": view,
        "layer": layer,
        "path": path,
        "crumbs": browser.crumbs(path),
        "children": children,
        "more": more,
        "offset": offset,
        "next_offset": offset + browser.PAGE,
        "select": request.GET.get("select", ""),
    }


def _state_url(name: str, case: Case, image: Image, **params) -> str:
    return (
        reverse(name, args=[case.pk, image.pk])
        + "?"
        + urlencode({k: v for k, v in params.items() if v != ""})
    )


@case_view()
def image_tab(request: HttpRequest, case: Case, role: str, image_id: int | None = None) -> HttpResponse:
    images = queries.case_images(case)
    if image_id is None:
        if not images:
            return render(
                request, "cases/image.html", tab_context(case, role, "image", images=[], image=None)
            )
        image = images[0]
    else:
        image = _image(case, image_id)
    layers = list(image.layers.order_by("index")) if image_id is not None else list(image.layers.all())
    times = imageinfo.layer_times(image)
    counts = queries.layer_finding_counts(case)
    for layer in layers:
        step = times.get(layer.index)
        layer.created_at = step.created if step else None
        layer.created_raw = step.created_raw if step else ""
        layer.finding_counts = counts.get(layer.pk, {})
        layer.high = sum(layer.finding_counts.get(s, 0) for s in queries.HIGH)
    flagged = queries.flagged_layers(case)
    context = tab_context(
        case,
        role,
        "image",
        images=images,
        image=image,
        layers=layers,
        summary=imageinfo.summary(image),
        history=imageinfo.history(image),
        chart=layer_chart(layers, flagged),
        graveyard_count=FileRecord.objects.filter(image=image, hidden_by__isnull=False).count(),
        signatures=list(
            Finding.objects.filter(image=image, rule_id__startswith="signature.").only(
                "rule_id", "title", "detail"
            )
        ),
        **_browser_state(request, image, layers),
    )
    return render(request, "cases/image.html", context)


@case_view()
def image_tree(request: HttpRequest, case: Case, role: str, image_id: int) -> HttpResponse:
    """One directory of the layer browser (an htmx partial; a full image tab without htmx)."""
    image = _image(case, image_id)
    if not is_htmx(request):
        return redirect(_state_url("cases:image_detail", case, image, **request.GET.dict()))
    layers = list(image.layers.order_by("index"))
    context = {
        "case": case,
        "image": image,
        "layers": layers,
        "can_write": role in ("lead", "investigator"),
        **_browser_state(request, image, layers),
    }
    return render(request, "cases/image/_browser.html", context)


@case_view()
def image_file(request: HttpRequest, case: Case, role: str, image_id: int) -> HttpResponse:
    """Everything about one path: its record in each layer that touched it, and its findings."""
    image = _image(case, image_id)
    path = request.GET.get("path", "")
    records = list(browser.path_history(image, path))
    if not records:
        raise Http404("No such path in this image")
    findings = Finding.objects.filter(case=case, image=image, path=path).order_by("pk")[:50]
    context = {
        "case": case,
        "image": image,
        "path": path,
        "records": records,
        "findings": findings,
        "can_write": role in ("lead", "investigator"),
    }
    if is_htmx(request):
        return render(request, "cases/image/_file.html", context)
    return render(request, "cases/image/file.html", {**tab_context(case, role, "image"), **context})


@case_view()
def image_graveyard(request: HttpRequest, case: Case, role: str, image_id: int) -> HttpResponse:
    image = _image(case, image_id)
    q = request.GET.get("q", "").strip()
    page = Paginator(browser.graveyard(image, q=q), 100).get_page(request.GET.get("page"))
    context = {
        **tab_context(case, role, "image"),
        "image": image,
        "page": page,
        "q": q,
        "layers": list(image.layers.order_by("index")),
        "images": queries.case_images(case),
    }
    template = "cases/image/_graveyard_table.html" if is_htmx(request) else "cases/image/graveyard.html"
    return render(request, template, context)


# --- recovery --------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _download_name(path: str, layer: int) -> str:
    base = _UNSAFE.sub("_", path.rsplit("/", 1)[-1]).strip("._") or "file"
    return f"layer{layer}-{base[:80]}.bin"


def _local_source(storage_key: str) -> tuple[str, bool]:
    """A filesystem path the engine can seek in, and whether it is a temporary copy to delete afterwards."""
    try:
        return default_storage.path(storage_key), False
    except NotImplementedError:
        pass
    with (
        default_storage.open(storage_key, "rb") as source,
        tempfile.NamedTemporaryFile(
            dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="recover-", delete=False
        ) as copy,
    ):
        shutil.copyfileobj(source, copy, 1024 * 1024)
    return copy.name, True


def _stream(first: bytes, rest, cleanup: str | None):
    try:
        if first:
            yield first
        yield from rest
    finally:
        if cleanup:
            os.unlink(cleanup)


@case_view(write=True)
@require_POST
def recover_file(request: HttpRequest, case: Case, role: str, file_id: int) -> HttpResponse:
    """Stream one file's bytes out of the layer that stored it (deleted and shadowed files included).

    The access is recorded on the evidence's custody log first (who, when, which layer and path, the
    expected SHA-256), then the bytes are streamed as an attachment that the browser never renders.
    """
    from scanner.engine import ScanError, open_layer_file

    record = get_object_or_404(
        FileRecord.objects.select_related("layer", "image__scan__evidence"),
        pk=file_id,
        image__scan__evidence__case=case,
    )
    image, evidence = record.image, record.image.scan.evidence
    back = request.POST.get("next") or reverse("cases:image_detail", args=[case.pk, image.pk])
    if not back.startswith(f"/cases/{case.pk}/"):
        back = reverse("cases:image_detail", args=[case.pk, image.pk])
    if record.type != "file" or record.change == "deleted":
        messages.error(request, "Only regular files can be recovered (this entry has no content of its own).")
        return redirect(back)
    source, temporary = _local_source(evidence.storage_key)
    try:
        chunks = iter(
            open_layer_file(
                source,
                record.layer.index,
                record.path,
                platform=image.platform or "linux/amd64",
                image_digest=image.manifest_digest or image.config_digest,  # the very image that was scanned
            )
        )
        first = next(chunks, b"")
    except (ScanError, OSError) as error:
        if temporary:
            os.unlink(source)
        messages.error(request, f"Could not recover {record.path!r}: {error}")
        return redirect(back)
    detail = {
        "image": image.manifest_digest or image.config_digest,
        "layer": record.layer.index,
        "layer_digest": record.layer.digest,
        "path": record.path,
        "sha256": record.sha256,
        "size": record.size,
        "hidden_by": record.hidden_by,
        "hidden_how": record.hidden_how,
        "client_address": request.META.get("REMOTE_ADDR", ""),
    }
    CustodyEvent.objects.create(
        evidence=evidence, action=CustodyAction.ACCESSED, actor=request.user, detail=detail
    )
    AuditEvent.record(
        case=case,
        actor=request.user,
        action="evidence.recovered",
        data={
            "evidence": evidence.pk,
            "file": record.pk,
            "layer": record.layer.index,
            "path": record.path,
            "sha256": record.sha256,
        },
    )
    log.info(
        "file recovered case=%s evidence=%s file=%s layer=%s",
        case.key,
        evidence.pk,
        record.pk,
        record.layer.index,
    )
    response = StreamingHttpResponse(
        _stream(first, chunks, source if temporary else None), content_type="application/octet-stream"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{_download_name(record.path, record.layer.index)}"'
    )
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["X-Evidence-SHA256"] = record.sha256
    return response
