"""A ScanReport as DESIGN §4's JSON (``lowerdir.scan/v1``) or as a table for people."""

from __future__ import annotations

import io

from .model import SCHEMA, Finding, ImageResult, LayerResult, ScanReport, Severity

SEVERITY_ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO]


def _layer(layer: LayerResult) -> dict:
    return {
        "index": layer.index, "digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size,
        "created_by": layer.created_by, "empty_history": list(layer.empty_history),
        "files_added": layer.files_added, "files_modified": layer.files_modified,
        "files_deleted": layer.files_deleted,
    }


def _finding(f: Finding) -> dict:
    return {
        "rule_id": f.rule_id, "severity": str(f.severity), "title": f.title, "detail": f.detail,
        "layer_index": f.layer_index, "layer_digest": f.layer_digest, "path": f.path, "sha256": f.sha256,
        "fingerprint": f.fingerprint,
        # added by the rule pack (issue 4); every key above is unchanged
        "excerpt": f.excerpt, "remediation": f.remediation, "hidden_layer_index": f.hidden_layer_index,
        "related": list(f.related), "suppressed": f.suppressed, "suppression": f.suppression,
    }


def sorted_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by layer and path (stable, so reports diff cleanly)."""
    return sorted(findings, key=lambda f: (-f.severity.rank, -1 if f.layer_index is None else f.layer_index,
                                           f.path, f.rule_id))


def _image(image: ImageResult) -> dict:
    return {
        "manifest_digest": image.manifest_digest, "config_digest": image.config_digest,
        "repo_tags": list(image.repo_tags), "platform": image.platform, "user": image.user,
        "created": image.created, "layers": [_layer(layer) for layer in image.layers],
        "findings": [_finding(f) for f in sorted_findings(image.findings)],
    }


def to_dict(report: ScanReport) -> dict:
    """The DESIGN §4 document (a contract: keys are never renamed or removed; findings also carry
    ``excerpt``, ``remediation``, ``hidden_layer_index``, ``related``, ``suppressed``, ``suppression``)."""
    return {
        "schema": SCHEMA,
        "source": {"path": report.source.path, "format": report.source.format,
                   "sha256": report.source.sha256},
        "images": [_image(image) for image in report.images],
        "stats": {"layers": report.stats.layers, "files": report.stats.files,
                  "bytes_read": report.stats.bytes_read, "seconds": report.stats.seconds},
    }


def max_severity(report: ScanReport) -> Severity | None:
    """The most severe finding that is not suppressed (suppressed findings never fail a build)."""
    found = [f.severity for image in report.images for f in image.findings if not f.suppressed]
    return max(found, key=lambda s: s.rank) if found else None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def render_table(report: ScanReport, *, color: bool = False, width: int = 120) -> str:
    """A readable summary: per image, the layers, then the findings (most severe first).

    With ``color`` it renders with rich (for a terminal); otherwise plain text. Attacker-controlled
    strings are printed as text only (rich markup is never interpreted).
    """
    if color:
        return _render_rich(report, width)
    out = io.StringIO()
    src = report.source
    out.write(f"source  {src.path}  ({src.format}{', sha256 ' + src.sha256 if src.sha256 else ''})\n")
    for image in report.images:
        out.write("\n")
        out.write(f"image   {', '.join(image.repo_tags) or '(untagged)'}  {image.platform}\n")
        out.write(f"        manifest {image.manifest_digest or '-'}\n")
        out.write(f"        config   {image.config_digest}\n")
        out.write(f"        user {image.user or '(root, unset)'}  created {image.created or '-'}\n\n")
        out.write(f"  {'#':>3}  {'digest':12}  {'size':>10}  {'+':>6} {'~':>6} {'-':>6}  created by\n")
        for layer in image.layers:
            mark = "" if layer.trusted else " [UNTRUSTED]"
            out.write(f"  {layer.index:>3}  {_short(layer.digest):12}  {_size(layer.size):>10}  "
                      f"{layer.files_added:>6} {layer.files_modified:>6} {layer.files_deleted:>6}  "
                      f"{_one_line(layer.created_by, max(20, width - 60))}{mark}\n")
        findings = sorted_findings(image.findings)
        out.write(f"\n  findings: {len(findings)}")
        counts = {s: sum(1 for f in findings if f.severity is s) for s in SEVERITY_ORDER}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        out.write(f" ({summary})\n" if summary else "\n")
        for f in findings:
            where = f"layer {f.layer_index}" if f.layer_index is not None else "image"
            mark = " (suppressed)" if f.suppressed else ""
            out.write(f"  {str(f.severity).upper():8}  {f.rule_id:28}  {where:8}  "
                      f"{_one_line(f.path or f.title, max(20, width - 54))}{mark}\n")
            if f.detail:
                out.write(f"            {_one_line(f.detail, max(20, width - 12))}\n")
            if f.excerpt:
                out.write(f"            match: {_one_line(f.excerpt, max(20, width - 19))}\n")
            if f.suppressed:
                out.write(f"            {_one_line(f.suppression, max(20, width - 12))}\n")
        out.write(f"\n  graveyard: {len(image.graveyard)} deleted or shadowed entries still in the image\n")
    st = report.stats
    out.write(f"\n{st.layers} layers, {st.files} entries, {_size(st.bytes_read)} read "
              f"in {st.seconds:.2f} s\n")
    return out.getvalue()


def _render_rich(report: ScanReport, width: int) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    styles = {Severity.CRITICAL: "bold red", Severity.HIGH: "red", Severity.MEDIUM: "yellow",
              Severity.LOW: "cyan", Severity.INFO: "dim"}
    console = Console(file=io.StringIO(), width=width, force_terminal=True, highlight=False)
    src = report.source
    console.print(Text(f"{src.path}  ({src.format})", style="bold"))
    for image in report.images:
        head = Text(f"\n{', '.join(image.repo_tags) or '(untagged)'}  {image.platform}  "
                    f"user={image.user or '(unset: root)'}  manifest={_short(image.manifest_digest)}  "
                    f"config={_short(image.config_digest)}")
        console.print(head)
        layers = Table(show_edge=False, pad_edge=False)
        for col, justify in (("#", "right"), ("digest", "left"), ("size", "right"), ("+", "right"),
                             ("~", "right"), ("-", "right"), ("created by", "left")):
            layers.add_column(col, justify=justify)  # type: ignore[arg-type]
        for layer in image.layers:
            cmd = Text(_one_line(layer.created_by, max(20, width - 60)))
            if not layer.trusted:
                cmd.append(" UNTRUSTED", style="bold red")
            layers.add_row(str(layer.index), _short(layer.digest), _size(layer.size), str(layer.files_added),
                           str(layer.files_modified), str(layer.files_deleted), cmd)
        console.print(layers)
        findings = sorted_findings(image.findings)
        table = Table(title=f"{len(findings)} findings", show_edge=False, pad_edge=False)
        for col in ("severity", "rule", "layer", "path / detail"):
            table.add_column(col)
        for f in findings:
            sev = Text(str(f.severity) + (" (suppressed)" if f.suppressed else ""),
                       style="dim" if f.suppressed else styles[f.severity])
            extra = f"  [{f.excerpt}]" if f.excerpt else ""
            table.add_row(sev, Text(f.rule_id), "-" if f.layer_index is None else str(f.layer_index),
                          Text(_one_line(f"{f.path}  {f.detail}{extra}".strip(), max(20, width - 50))))
        console.print(table)
        console.print(Text(f"graveyard: {len(image.graveyard)} deleted or shadowed entries "
                           "still in the image"))
    st = report.stats
    console.print(Text(f"\n{st.layers} layers, {st.files} entries, {_size(st.bytes_read)} read "
                       f"in {st.seconds:.2f} s", style="dim"))
    return console.file.getvalue()  # type: ignore[attr-defined]
