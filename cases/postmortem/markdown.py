"""The post-mortem as Markdown (CommonMark + GFM tables), section for section the same as the PDF.

Escaping, because a Markdown viewer renders raw HTML and links:

* values from an image (paths, digests, commands, tags, rule ids, excerpts) go into code spans, whose
  content is literal; the fence is longer than any backtick run inside, newlines become spaces;
* other single-line text (titles, names, notes) has every Markdown metacharacter backslash-escaped;
* the narrative is Markdown already and is kept as written, except that raw HTML outside code is
  neutralised (``<`` becomes ``&lt;``), so it renders as text, not as tags;
* inside table cells ``|`` is escaped as well (GFM splits cells on it, even inside code spans).
"""

from __future__ import annotations

import re

from .context import HEADINGS, PostMortem

_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")  # inline: emphasis, code, links, HTML, tables, entities
_LINE_START = re.compile(r"^(?:([#=+-])|(\d+)([.)]))")  # block markers, where a value starts a line
_BACKTICKS = re.compile(r"`+")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def one_line(value) -> str:
    return " ".join(str(value or "").split())


def text(value) -> str:
    """Plain text on one line, with every character escaped that could start Markdown syntax."""
    escaped = _SPECIAL.sub(r"\\\1", one_line(value))
    return _LINE_START.sub(
        lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), escaped
    )


def code(value, *, cell: bool = False) -> str:
    """An inline code span holding ``value`` literally."""
    body = one_line(value)
    if not body:
        return ""
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * (longest + 1)
    if body.startswith("`") or body.endswith("`") or longest:
        body = f" {body} "
    if cell:
        body = body.replace("|", "\\|")
    return f"{fence}{body}{fence}"


def prose(value) -> str:
    """Investigators' Markdown, with raw HTML outside code neutralised."""
    out, fenced = [], None
    for line in str(value or "").replace("\r\n", "\n").split("\n"):
        fence = _FENCE.match(line)
        if fenced:
            out.append(line)
            if fence and fence.group(1)[0] == fenced[0] and len(fence.group(1)) >= len(fenced):
                fenced = None
            continue
        if fence:
            fenced = fence.group(1)
            out.append(line)
            continue
        parts, last = [], 0
        for span in _CODE_SPAN.finditer(line):
            parts.append(line[last : span.start()].replace("<", "&lt;"))
            parts.append(span.group(0))
            last = span.end()
        parts.append(line[last:].replace("<", "&lt;"))
        out.append("".join(parts))
    return "\n".join(out).strip()


def _cell(value) -> str:
    return text(value)


def _utc(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _short(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _size(n: int) -> str:
    size = float(n or 0)
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
    return ""


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["l"] * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _narrative(pm: PostMortem, name: str, empty: str) -> list[str]:
    body = prose(pm.narrative.get(name, ""))
    return [body] if body else [f"*{empty}*"]


def render(pm: PostMortem) -> str:
    h = HEADINGS
    out: list[str] = []
    add = out.append

    # Cover -----------------------------------------------------------------------------------------
    add(f"# {text(pm.key)} post-mortem: {text(pm.title)}")
    add("")
    classification = f" · {text(pm.classification)}" if pm.classification else ""
    add(f"**{text(pm.tlp.label)}**{classification}: {text(pm.tlp.description)}")
    add("")
    start, end = pm.period
    add_rows = [
        ["Severity", text(pm.severity_label)],
        ["Status", text(pm.status_label)],
        ["Incident lead", text(pm.lead)],
        ["Authors", text(", ".join(pm.authors))],
        ["Case opened", _utc(pm.opened_at)],
        ["Period covered", f"{_short(start)} – {_utc(end)}" if start else "—"],
        ["Generated", _utc(pm.generated_at) + (f" for {text(pm.generated_by)}" if pm.generated_by else "")],
        ["Export", f"\\#{pm.export_id}" if pm.export_id else "preview (not recorded)"],
    ]
    out.extend(_table(["", ""], add_rows))
    add("")
    add("**Evidence covered**")
    add("")
    if pm.evidence:
        out.extend(
            _table(
                ["Evidence", "SHA-256", "Size"],
                [[_cell(e.name), code(e.sha256, cell=True), _size(e.size)] for e in pm.evidence],
                ["l", "l", "r"],
            )
        )
    else:
        add("*No evidence in this case.*")
    add("")

    # 1 ---------------------------------------------------------------------------------------------
    add(f"## {h['summary']}")
    add("")
    counts = ", ".join(
        f"{pm.severity_counts[s]['total']:,} {s}" for s in pm.severities if pm.severity_counts[s]["total"]
    )
    add(
        f"**{pm.total_findings:,} findings** ({counts or 'none'}); {pm.open_findings:,} untriaged. "
        f"Remediation: {pm.checklist_done} of {pm.checklist_items} checklist items done "
        f"({pm.checklist_percent} %). {len(pm.images)} image(s), {len(pm.evidence)} evidence item(s)."
    )
    add("")
    add("### Summary")
    add("")
    out.extend(_narrative(pm, "summary", "No summary was written."))
    add("")
    add("### Impact")
    add("")
    out.extend(_narrative(pm, "impact", "No impact statement was written."))
    add("")
    add("### Findings by severity and triage status")
    add("")
    statuses = pm.statuses
    rows = [
        [s.capitalize()]
        + [str(pm.matrix[s].get(status, 0) or "·") for status, _label in statuses]
        + [f"**{pm.severity_counts[s]['total']}**"]
        for s in pm.severities
    ]
    rows.append(
        ["All"] + [str(pm.status_counts.get(st, 0)) for st, _l in statuses] + [f"**{pm.total_findings}**"]
    )
    out.extend(
        _table(
            ["Severity"] + [label for _s, label in statuses] + ["Total"],
            rows,
            ["l"] + ["r"] * (len(statuses) + 1),
        )
    )
    add("")

    # 2 ---------------------------------------------------------------------------------------------
    add(f"## {h['scope']}")
    add("")
    add("### Images")
    add("")
    if not pm.images:
        add("*No image was scanned successfully in this case.*")
        add("")
    for image in pm.images:
        add(f"#### {text(image.label)}")
        add("")
        tags = ", ".join(code(t, cell=True) for t in image.tags) or "none (known by digest only)"
        user = (code(image.user, cell=True) if image.user else "(empty)") + (
            " — runs as root" if image.runs_as_root else ""
        )
        out.extend(
            _table(
                ["", ""],
                [
                    ["Tags", tags],
                    ["Manifest digest", code(image.manifest_digest, cell=True) or "—"],
                    ["Config digest", code(image.config_digest, cell=True)],
                    ["Platform", text(image.platform) or "—"],
                    ["User", user],
                    [
                        "Entrypoint / Cmd",
                        f"{code(image.entrypoint, cell=True) or '—'} / {code(image.cmd, cell=True) or '—'}",
                    ],
                    ["Created", text(image.created) or "—"],
                    [
                        "From evidence",
                        f"{_cell(image.evidence_name)} {code(image.evidence_sha256, cell=True)}",
                    ],
                    ["Layers", f"{len(image.layers)} (Appendix A)"],
                ],
            )
        )
        add("")
    add("### Evidence register and chain of custody")
    add("")
    if not pm.evidence:
        add("*No evidence in this case.*")
        add("")
    for e in pm.evidence:
        add(f"#### {text(e.name)}")
        add("")
        add(f"- SHA-256: {code(e.sha256)}")
        add(f"- Size: {e.size:,} bytes ({_size(e.size)})")
        add(f"- Received: {_utc(e.received_at)} by {text(e.received_by)}")
        if e.description:
            add(f"- Description: {text(e.description)}")
        if e.scan_status:
            add(f"- Scan: {text(e.scan_status)}")
        add("")
        if e.custody:
            out.extend(
                _table(
                    ["Time (UTC)", "Custody event", "By", "Detail"],
                    [
                        [_utc(c.at), text(c.action_label), text(c.actor or "system"), _cell(c.detail)]
                        for c in e.custody
                    ],
                )
            )
        else:
            add("*No custody events.*")
        add("")

    # 3 ---------------------------------------------------------------------------------------------
    add(f"## {h['detection']}")
    add("")
    for name, title in (
        ("detection", "Detection and trigger"),
        ("root_cause", "Root cause"),
        ("contributing_factors", "Contributing factors"),
    ):
        add(f"### {title}")
        add("")
        out.extend(_narrative(pm, name, "Not recorded."))
        add("")

    # 4 ---------------------------------------------------------------------------------------------
    add(f"## {h['timeline']}")
    add("")
    if pm.timeline:
        rows = []
        for t in pm.timeline:
            what = code(t.title, cell=True) if t.kind == "history" else f"**{_cell(t.title)}**"
            if t.body:
                what += " — " + (
                    _cell(t.body) if not t.markdown else one_line(prose(t.body)).replace("|", "\\|")
                )
            extra = [x for x in (t.detail, f"{t.findings:,} findings" if t.findings > 1 else "") if x]
            if extra:
                what += " (" + _cell(" · ".join(extra)) + ")"
            rows.append([_utc(t.at), text(t.kind_label), what, text(t.author)])
        out.extend(_table(["Time (UTC)", "Kind", "What happened", "By"], rows))
    else:
        add("*Nothing on the timeline.*")
    add("")

    # 5 ---------------------------------------------------------------------------------------------
    add(f"## {h['findings']}")
    add("")
    add(
        f"{pm.reported_findings:,} findings, by severity, then rule and layer. False positives "
        f"({len(pm.false_positives)}) and suppressed findings ({len(pm.suppressed)}) are in section 6. "
        "Secrets are shown redacted."
    )
    add("")
    for severity, rows in pm.findings.items():
        if not rows:
            continue
        add(f"### {severity.capitalize()} ({len(rows):,})")
        add("")
        for f in rows:
            add(f"- **\\#{f.pk}** {code(f.rule_id)} {text(f.title)}")
            if f.path:
                add(f"  - Path: {code(f.path)}")
            if f.layer_index is not None:
                hidden = f" (hidden by L{f.hidden_layer_index})" if f.hidden_layer_index is not None else ""
                add(f"  - Layer: L{f.layer_index}{hidden} {code(f.layer_digest)}")
            else:
                add("  - Layer: image config")
            if f.sha256:
                add(f"  - File SHA-256: {code(f.sha256)}")
            if f.excerpt:
                add(f"  - Excerpt (redacted): {code(f.excerpt)}")
            elif f.detail and not f.path:  # the detail, when nothing else says what was found
                add(f"  - Detail: {text(f.detail)}")
            triage = text(f.status_label)
            if f.triaged_by:
                triage += f" by {text(f.triaged_by)}"
            if f.triaged_at:
                triage += f", {_short(f.triaged_at)}"
            if f.assignee:
                triage += f"; assigned to {text(f.assignee)}"
            if f.triage_note:
                triage += f": “{text(f.triage_note)}”"
            add(f"  - Triage: {triage}")
        add("")
    if not pm.reported_findings:
        add("*No findings to report.*")
        add("")

    # 6 ---------------------------------------------------------------------------------------------
    add(f"## {h['false-positives']}")
    add("")
    if pm.false_positives:
        out.extend(
            _table(
                ["#", "Rule", "Finding", "Reason", "By"],
                [
                    [
                        str(f.pk),
                        code(f.rule_id, cell=True),
                        _cell(f.title) + (" " + code(f.path, cell=True) if f.path else ""),
                        _cell(f.triage_note) or "—",
                        text(f.triaged_by),
                    ]
                    for f in pm.false_positives
                ],
            )
        )
    else:
        add("*No finding was judged a false positive.*")
    add("")
    if pm.suppressed:
        add("### Suppressed by the rule pack")
        add("")
        out.extend(
            _table(
                ["#", "Rule", "Finding", "Suppression"],
                [
                    [
                        str(f.pk),
                        code(f.rule_id, cell=True),
                        _cell(f.title) + (" " + code(f.path, cell=True) if f.path else ""),
                        _cell(f.suppression) or "—",
                    ]
                    for f in pm.suppressed
                ],
            )
        )
        add("")

    # 7 ---------------------------------------------------------------------------------------------
    add(f"## {h['remediation']}")
    add("")
    if not pm.checklists:
        add("*No remediation checklist in this case.*")
        add("")
    for c in pm.checklists:
        add(f"### {text(c.title)} ({c.done} of {len(c.items)} done, {c.percent} %)")
        add("")
        if c.description:
            add(text(c.description))
            add("")
        for item in c.items:
            box = "[x]" if item.done else "[ ]"
            facts = []
            if item.owner:
                facts.append(f"owner {text(item.owner)}")
            if item.due:
                facts.append(f"due {item.due.isoformat()}")
            if item.done:
                facts.append(f"done by {text(item.done_by or '—')} {_short(item.done_at)}".rstrip())
            line = f"- {box} {text(item.text)}"
            if facts:
                line += " (" + "; ".join(facts) + ")"
            add(line)
            if item.note:
                add(f"  - Note: {text(item.note)}")
        add("")

    # 8 ---------------------------------------------------------------------------------------------
    add(f"## {h['actions']}")
    add("")
    for name, title in (("actions_mitigate", "Mitigate"), ("actions_prevent", "Prevent")):
        add(f"### {title}")
        add("")
        out.extend(_narrative(pm, name, "None recorded."))
        add("")
    add("### Lessons learned")
    add("")
    for name, title in (
        ("lessons_went_well", "What went well"),
        ("lessons_went_wrong", "What went wrong"),
        ("lessons_lucky", "Where we got lucky"),
    ):
        add(f"#### {title}")
        add("")
        out.extend(_narrative(pm, name, "—"))
        add("")

    # Appendices ------------------------------------------------------------------------------------
    add(f"## {h['appendix-layers']}")
    add("")
    if not pm.images:
        add("*No image was scanned successfully in this case.*")
        add("")
    for image in pm.images:
        add(f"### {text(image.label)}")
        add("")
        out.extend(
            _table(
                ["#", "Created by", "Digest", "Size", "Added", "Modified", "Deleted", "Findings"],
                [
                    [
                        f"L{layer.index}",
                        code(layer.created_by, cell=True) or "—",
                        code(layer.digest, cell=True)
                        + ("" if layer.trusted else " **digest did not verify**"),
                        _size(layer.size),
                        f"{layer.files_added:,}",
                        f"{layer.files_modified:,}",
                        f"{layer.files_deleted:,}",
                        f"{layer.findings:,}" + (f" ({layer.worst})" if layer.worst else ""),
                    ]
                    for layer in image.layers
                ],
                ["l", "l", "l", "r", "r", "r", "r", "r"],
            )
        )
        add("")
    add(f"## {h['appendix-rules']}")
    add("")
    if not pm.rules:
        add("*No findings, so no rules to describe.*")
        add("")
    for rule in pm.rules:
        plural = "s" if rule.count != 1 else ""
        add(f"### {code(rule.id)} ({text(rule.severity)}, {rule.count} finding{plural})")
        add("")
        add(f"**{text(rule.title)}**")
        add("")
        if rule.description:
            add(prose(rule.description))
            add("")
        if rule.remediation:
            add(f"*Remediation:* {prose(rule.remediation)}")
            add("")
        if rule.references:
            add("References: " + ", ".join(code(ref) for ref in rule.references))
            add("")
        if not rule.in_catalogue:
            add("*Not in the rule pack's catalogue: its id and title as the findings carry them.*")
            add("")
    if pm.export_id:
        add(
            f"---\n\n*End of document. The SHA-256 of this file is recorded in {text(pm.key)}'s export log "
            f"(export \\#{pm.export_id}), its audit log and the custody log of each evidence item above.*"
        )
    else:
        add("---\n\n*End of document. This preview is not an export and is not recorded.*")
    return "\n".join(out).rstrip() + "\n"
