"""One context, three documents: HTML (the browser preview and the PDF's source), PDF and JSON.

The Markdown writer is in :mod:`.markdown`. Nothing here queries the database: everything comes from the
:class:`~.context.PostMortem`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from django.template.loader import render_to_string
from django.templatetags.static import static

from ..workspace.charts import layer_chart_svg, severity_svg
from .context import HEADINGS, SCHEMA, PostMortem

Progress = Callable[[float], None]

# The only URL the document links (the fetcher serves it from this repository); a reserved ``.invalid``
# name, so even a bug could not reach a real host.
BASE_URL = "https://postmortem.lowerdir.invalid/"
STYLESHEET = "static/css/postmortem.css"

# WeasyPrint logs every page it lays out on this logger: our progress handler listens to it, the
# application's logs should not (a thousand lines per export). WeasyPrint itself is imported lazily.
logging.getLogger("weasyprint.progress").propagate = False


def charts(pm: PostMortem) -> dict:
    """The case page's own SVG charts (``cases.workspace.charts``): severity bars and each image's layers."""
    return {
        "severity": severity_svg(pm.severity_totals),
        "layers": {
            image.pk: layer_chart_svg(image, [layer.model for layer in image.layers], image.flagged)
            for image in pm.images
        },
    }


def html(pm: PostMortem, *, preview: bool = False, links: dict | None = None) -> str:
    """The document as HTML. ``preview`` links the stylesheet through STATIC_URL (the browser) and adds a
    toolbar; otherwise the stylesheet URL is the one :class:`StaticOnlyFetcher` answers (WeasyPrint)."""
    return render_to_string(
        "postmortem/document.html",
        {
            "pm": pm,
            "h": HEADINGS,
            "charts": charts(pm),
            "preview": preview,
            "links": links or {},
            "stylesheet": static("css/postmortem.css") if preview else BASE_URL + STYLESHEET,
        },
    )


@dataclass
class Pdf:
    data: bytes
    pages: int
    fetcher: object  # the StaticOnlyFetcher used


class _PageProgress(logging.Handler):
    """WeasyPrint logs "Step 5 - Creating layout - Page N" on its progress logger: turn it into a fraction
    of the layout phase (an estimate: the page count is not known until layout ends)."""

    PAGE = re.compile(r"Page (\d+)")

    def __init__(self, callback: Progress, expected_pages: int, start: float, end: float) -> None:
        super().__init__(logging.INFO)
        self.callback, self.expected, self.start, self.end = callback, max(expected_pages, 1), start, end
        self.done = 0  # repagination (page counters) restarts at page 1: progress only moves forward
        self.thread = threading.get_ident()  # another render in another thread logs here too

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        match = self.PAGE.search(record.getMessage())
        if match and int(match.group(1)) > self.done:
            self.done = int(match.group(1))
            fraction = min(self.done / self.expected, 0.98)
            self.callback(self.start + (self.end - self.start) * fraction)


def expected_pages(pm: PostMortem) -> int:
    """A rough page count for progress: cover + summary + a page or two per section + the long tables."""
    return (
        6
        + pm.reported_findings // 14
        + len(pm.timeline) // 30
        + len(pm.false_positives) // 40
        + pm.checklist_items // 25
        + sum(len(image.layers) for image in pm.images) // 20
        + len(pm.rules) // 6
    )


def pdf(pm: PostMortem, *, progress: Progress | None = None, fetcher=None) -> Pdf:
    """Render the PDF with WeasyPrint. The fetcher (:class:`.fetcher.StaticOnlyFetcher`) refuses everything
    but our stylesheet; pass one in to inspect what was asked for (``fetcher.requested``)."""
    from weasyprint import HTML
    from weasyprint.logger import PROGRESS_LOGGER

    from .fetcher import StaticOnlyFetcher

    progress = progress or (lambda _fraction: None)
    fetcher = fetcher or StaticOnlyFetcher()
    source = html(pm)
    progress(0.2)
    handler = _PageProgress(progress, expected_pages(pm), 0.25, 0.9)
    PROGRESS_LOGGER.setLevel(logging.INFO)
    PROGRESS_LOGGER.addHandler(handler)
    try:
        document = HTML(string=source, base_url=BASE_URL, url_fetcher=fetcher, media_type="print").render()
    finally:
        PROGRESS_LOGGER.removeHandler(handler)
    progress(0.9)
    data = document.write_pdf()
    progress(0.99)
    return Pdf(data=data, pages=len(document.pages), fetcher=fetcher)


# -- JSON ----------------------------------------------------------------------------------------------------


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _finding(f) -> dict:
    return {
        "id": f.pk,
        "rule_id": f.rule_id,
        "severity": f.severity,
        "title": f.title,
        "detail": f.detail,
        "image": f.image_label,
        "layer_index": f.layer_index,
        "layer_digest": f.layer_digest,
        "hidden_by_layer_index": f.hidden_layer_index,
        "path": f.path,
        "sha256": f.sha256,
        "excerpt": f.excerpt,
        "status": f.status,
        "triage_note": f.triage_note,
        "assignee": f.assignee,
        "triaged_by": f.triaged_by,
        "triaged_at": _plain(f.triaged_at),
        "suppressed": f.suppressed,
        "suppression": f.suppression,
    }


def document(pm: PostMortem) -> dict:
    """The post-mortem as a JSON-ready dict (``lowerdir.postmortem/v1``): the same facts as the PDF."""
    start, end = pm.period
    return {
        "schema": SCHEMA,
        "case": {
            "id": pm.case.pk,
            "key": pm.key,
            "title": pm.title,
            "severity": pm.severity,
            "status": pm.status,
            "lead": pm.lead,
            "authors": pm.authors,
            "members": [{"username": name, "role": role} for name, role in pm.members],
            "opened_at": _plain(pm.opened_at),
        },
        "export": {
            "id": pm.export_id,
            "generated_at": _plain(pm.generated_at),
            "generated_by": pm.generated_by,
            "tlp": pm.tlp.label,
            "classification": pm.classification,
            "evidence_sha256": pm.evidence_digests,
        },
        "sections": [{"id": key, "heading": heading} for key, heading in pm.sections],
        "narrative": pm.narrative,
        "summary": {
            "findings": pm.total_findings,
            "untriaged": pm.open_findings,
            "by_severity": {name: counts["total"] for name, counts in pm.severity_counts.items()},
            "by_status": pm.status_counts,
            "by_severity_and_status": pm.matrix,
            "remediation": {
                "items": pm.checklist_items,
                "done": pm.checklist_done,
                "percent": pm.checklist_percent,
            },
            "period": {"start": _plain(start), "end": _plain(end)},
        },
        "images": [
            {
                "tags": image.tags,
                "manifest_digest": image.manifest_digest,
                "config_digest": image.config_digest,
                "platform": image.platform,
                "user": image.user,
                "runs_as_root": image.runs_as_root,
                "entrypoint": image.entrypoint,
                "cmd": image.cmd,
                "created": image.created,
                "evidence_sha256": image.evidence_sha256,
                "layers": [
                    {
                        "index": layer.index,
                        "digest": layer.digest,
                        "diff_id": layer.diff_id,
                        "size": layer.size,
                        "created_by": layer.created_by,
                        "files_added": layer.files_added,
                        "files_modified": layer.files_modified,
                        "files_deleted": layer.files_deleted,
                        "trusted": layer.trusted,
                        "findings": layer.findings,
                    }
                    for layer in image.layers
                ],
            }
            for image in pm.images
        ],
        "evidence": [
            {
                "name": e.name,
                "sha256": e.sha256,
                "size": e.size,
                "received_by": e.received_by,
                "received_at": _plain(e.received_at),
                "description": e.description,
                "scan_status": e.scan_status,
                "custody": [
                    {"at": _plain(c.at), "action": c.action, "actor": c.actor, "detail": c.detail}
                    for c in e.custody
                ],
            }
            for e in pm.evidence
        ],
        "timeline": [
            {
                "at": _plain(t.at),
                "kind": t.kind,
                "title": t.title,
                "body": t.body,
                "author": t.author,
                "detail": t.detail,
                "findings": t.findings,
            }
            for t in pm.timeline
        ],
        "findings": [_finding(f) for rows in pm.findings.values() for f in rows],
        "false_positives": [_finding(f) for f in pm.false_positives],
        "suppressed": [_finding(f) for f in pm.suppressed],
        "checklists": [
            {
                "title": c.title,
                "template": c.slug,
                "description": c.description,
                "done": c.done,
                "items": [
                    {
                        "text": item.text,
                        "owner": item.owner,
                        "due": _plain(item.due),
                        "done": item.done,
                        "done_by": item.done_by,
                        "done_at": _plain(item.done_at),
                        "note": item.note,
                    }
                    for item in c.items
                ],
            }
            for c in pm.checklists
        ],
        "rules": [
            {
                "id": rule.id,
                "severity": rule.severity,
                "title": rule.title,
                "description": rule.description,
                "remediation": rule.remediation,
                "references": rule.references,
                "findings": rule.count,
                "in_catalogue": rule.in_catalogue,
            }
            for rule in pm.rules
        ],
    }


def json_bytes(pm: PostMortem) -> bytes:
    return (json.dumps(document(pm), indent=2, ensure_ascii=False, default=_plain) + "\n").encode()
