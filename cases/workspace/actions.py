"""Every change a person makes to a case goes through here: it is applied, audited (who, when, what,
before/after in the hash-chained log) and, where the incident story needs it, put on the timeline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from scanner.models import Finding, Image, ScanStatus, TriageStatus

from ..models import (
    AuditEvent,
    Case,
    CaseMembership,
    CaseStatus,
    Checklist,
    ChecklistItem,
    FindingComment,
    Note,
    NoteRevision,
    Role,
    TimelineEvent,
    TimelineKind,
)
from ..playbooks import CaseTemplateSpec, checklist_templates, expand_items

NARRATIVE_FIELDS = (
    "summary",
    "detection",
    "root_cause",
    "contributing_factors",
    "impact",
    "actions_mitigate",
    "actions_prevent",
    "lessons_went_well",
    "lessons_went_wrong",
    "lessons_lucky",
)
LEAD_FIELDS = ("title", "severity")
REASON_REQUIRED = (TriageStatus.FALSE_POSITIVE, TriageStatus.ACCEPTED)


class ActionError(ValueError):
    """A request that cannot be applied; the message is shown to the user."""


def audit(case: Case, user, action: str, **data) -> AuditEvent:
    return AuditEvent.record(case=case, actor=user, action=action, data=data)


# --- the case itself -------------------------------------------------------------------------------------


def change_status(case: Case, user, status: str, *, role: str) -> bool:
    if status not in CaseStatus.values:
        raise ActionError("Unknown status.")
    if status == case.status:
        return False
    if (status == CaseStatus.CLOSED or case.status == CaseStatus.CLOSED) and role != Role.LEAD:
        raise ActionError("Only the case lead can close or reopen a case.")
    before = case.status
    with transaction.atomic():
        case.status = status
        case.save(update_fields=["status", "updated_at"])
        TimelineEvent.objects.create(
            case=case,
            kind=TimelineKind.STATUS,
            author=user,
            title=f"Status: {CaseStatus(before).label} → {CaseStatus(status).label}",
        )
        audit(case, user, "case.status", before=before, after=status)
    return True


def update_case(case: Case, user, changes: dict, *, role: str) -> list[str]:
    """Edit the narrative (investigators) and title/severity/lead (lead only). Returns the changed fields."""
    allowed = set(NARRATIVE_FIELDS) | (set(LEAD_FIELDS) if role == Role.LEAD else set())
    before, after = {}, {}
    for name, value in changes.items():
        if name not in allowed:
            continue
        if getattr(case, name) != value:
            before[name], after[name] = getattr(case, name), value
            setattr(case, name, value)
    if not after:
        return []
    with transaction.atomic():
        case.save(update_fields=[*after, "updated_at"])
        audit(case, user, "case.updated", before=before, after=after)
    return list(after)


def set_lead(case: Case, user, new_lead) -> None:
    membership = CaseMembership.objects.filter(case=case, user=new_lead).first()
    if membership is None:
        raise ActionError("The new lead must be a member of the case.")
    if case.lead_id == new_lead.pk:
        return
    with transaction.atomic():
        before = case.lead.username
        case.lead = new_lead
        case.save(update_fields=["lead", "updated_at"])
        if membership.role != Role.LEAD:
            membership.role = Role.LEAD
            membership.save(update_fields=["role"])
        audit(case, user, "case.lead", before=before, after=new_lead.username)


def add_member(case: Case, user, member, role: str) -> CaseMembership:
    if role not in Role.values:
        raise ActionError("Unknown role.")
    with transaction.atomic():
        membership, created = CaseMembership.objects.get_or_create(
            case=case, user=member, defaults={"role": role}
        )
        if not created:
            raise ActionError(f"{member.username} is already a member.")
        audit(case, user, "member.added", member=member.username, after=role)
    return membership


def change_role(case: Case, user, membership: CaseMembership, role: str) -> None:
    if role not in Role.values:
        raise ActionError("Unknown role.")
    if membership.role == role:
        return
    if membership.user_id == case.lead_id and role != Role.LEAD:
        raise ActionError("Make someone else the case lead first.")
    with transaction.atomic():
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit(case, user, "member.role", member=membership.user.username, before=before, after=role)


def remove_member(case: Case, user, membership: CaseMembership) -> None:
    if membership.user_id == case.lead_id:
        raise ActionError("The case lead cannot be removed; make someone else the lead first.")
    with transaction.atomic():
        audit(case, user, "member.removed", member=membership.user.username, before=membership.role)
        membership.delete()


def image_refs(case: Case) -> tuple[list[str], list[str]]:
    """Every tag and manifest digest of the images scanned on this case (for registry purge items)."""
    tags: list[str] = []
    digests: list[str] = []
    images = Image.objects.filter(scan__evidence__case=case, scan__status=ScanStatus.SUCCEEDED)
    for repo_tags, manifest_digest, config_digest in images.values_list(
        "repo_tags", "manifest_digest", "config_digest"
    ):
        for tag in repo_tags or []:
            if str(tag) not in tags:
                tags.append(str(tag))
        digest = manifest_digest or config_digest
        if digest and digest not in digests:
            digests.append(digest)
    return tags, digests


def add_checklist(case: Case, user, slug: str) -> Checklist:
    template = checklist_templates().get(slug)
    if template is None:
        raise ActionError("Unknown checklist template.")
    tags, digests = image_refs(case)
    with transaction.atomic():
        checklist = Checklist.objects.create(
            case=case, slug=slug, title=template.title, description=template.description
        )
        ChecklistItem.objects.bulk_create(
            ChecklistItem(checklist=checklist, position=n, text=text)
            for n, text in enumerate(expand_items(template, tags=tags, digests=digests))
        )
        audit(case, user, "checklist.added", checklist=checklist.pk, template=slug)
    return checklist


def refresh_checklist(case: Case, user, checklist: Checklist) -> int:
    """Add the per-tag and per-digest items of its template for images scanned since it was created."""
    template = checklist_templates().get(checklist.slug)
    if template is None or not any(item.for_each for item in template.items):
        return 0
    tags, digests = image_refs(case)
    existing = set(checklist.items.values_list("text", flat=True))
    placeholders = {item.if_none for item in template.items if item.if_none}
    wanted = [
        text
        for text in expand_items(template, tags=tags, digests=digests)
        if text not in existing and text not in placeholders
    ]
    if not wanted:
        return 0
    with transaction.atomic():
        position = checklist.items.aggregate(m=Max("position"))["m"] or 0
        ChecklistItem.objects.bulk_create(
            ChecklistItem(checklist=checklist, position=position + n, text=text)
            for n, text in enumerate(wanted, 1)
        )
        audit(case, user, "checklist.refreshed", checklist=checklist.pk, added=wanted)
    return len(wanted)


def apply_case_template(case: Case, user, spec: CaseTemplateSpec) -> None:
    for slug in spec.checklists:
        if slug in checklist_templates():
            add_checklist(case, user, slug)
    start = case.created_at
    with transaction.atomic():
        for n, heading in enumerate(spec.timeline_headings):
            TimelineEvent.objects.create(
                case=case,
                kind=TimelineKind.HEADING,
                author=user,
                title=heading[:300],
                occurred_at=start + timezone.timedelta(microseconds=n),
            )
        audit(case, user, "case.template", template=spec.key)


# --- checklists ------------------------------------------------------------------------------------------

ITEM_FIELDS = ("text", "owner", "due", "note", "done")


def update_item(case: Case, user, item: ChecklistItem, changes: dict) -> None:
    before, after = {}, {}
    for name, value in changes.items():
        if name not in ITEM_FIELDS:
            continue
        current = getattr(item, name)
        if current != value:
            before[name], after[name] = _plain(current), _plain(value)
            setattr(item, name, value)
    if not after:
        return
    with transaction.atomic():
        if "done" in after:
            item.done_by = user if item.done else None
            item.done_at = timezone.now() if item.done else None
            if item.done:
                TimelineEvent.objects.create(
                    case=case,
                    kind=TimelineKind.CHECKLIST,
                    author=user,
                    title=f"Done: {item.text}"[:300],
                    body=f"Checklist: {item.checklist.title}",
                )
        item.save()
        audit(case, user, "checklist.item", item=item.pk, before=before, after=after)


def add_item(
    case: Case,
    user,
    checklist: Checklist,
    text: str,
    *,
    finding: Finding | None = None,
    suggestion_key: str = "",
) -> ChecklistItem:
    text = text.strip()[:500]
    if not text:
        raise ActionError("An item needs some text.")
    with transaction.atomic():
        position = (checklist.items.aggregate(m=Max("position"))["m"] or 0) + 1
        item = ChecklistItem.objects.create(
            checklist=checklist, position=position, text=text, finding=finding, suggestion_key=suggestion_key
        )
        audit(
            case,
            user,
            "checklist.item.added",
            item=item.pk,
            checklist=checklist.pk,
            text=text,
            finding=finding.pk if finding else None,
        )
    return item


def _plain(value):
    if hasattr(value, "username"):
        return value.username
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# --- findings --------------------------------------------------------------------------------------------


def triage(
    case: Case,
    user,
    findings: Iterable[Finding] | None = None,
    *,
    ids: list[int] | None = None,
    status: str | None = None,
    reason: str = "",
    assignee=...,
    note_for_timeline: bool = True,
) -> int:
    """Set status (with a reason where one is required) and/or the assignee of one or many findings.

    ``ids`` (already restricted to the case) lets bulk actions touch thousands of rows in a few queries.
    """
    if status is not None and status not in TriageStatus.values:
        raise ActionError("Unknown triage status.")
    reason = (reason or "").strip()
    if status in REASON_REQUIRED and not reason:
        raise ActionError(f"Give a reason for “{TriageStatus(status).label}”.")
    queryset = Finding.objects.filter(case=case)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    elif findings is not None:
        queryset = queryset.filter(pk__in=[f.pk for f in findings])
    rows = list(queryset.values_list("pk", "status", "assignee__username", "title"))
    if not rows:
        return 0
    now = timezone.now()
    update: dict = {}
    before_status: dict[str, list[int]] = defaultdict(list)
    before_assignee: dict[str, list[int]] = defaultdict(list)
    if status is not None:
        update.update(status=status, triaged_by=user, triaged_at=now, triage_reason=reason)
        for pk, current, _assignee, _title in rows:
            before_status[current].append(pk)
    elif reason:
        update.update(triage_reason=reason)
    if assignee is not ...:
        update["assignee"] = assignee
        for pk, _status, current, _title in rows:
            before_assignee[current or ""].append(pk)
    if not update:
        return 0
    pks = [row[0] for row in rows]
    with transaction.atomic():
        for start in range(0, len(pks), 900):  # stay under SQLite's bound-parameter limit
            Finding.objects.filter(pk__in=pks[start : start + 900]).update(**update)
        data = {"findings": pks if len(pks) > 1 else pks[0]}
        if status is not None:
            data.update(before={"status": dict(before_status)}, after={"status": status, "reason": reason})
        if assignee is not ...:
            data.setdefault("before", {})["assignee"] = dict(before_assignee)
            data.setdefault("after", {})["assignee"] = assignee.username if assignee else None
        audit(case, user, "finding.triage" if len(pks) == 1 else "finding.bulk_triage", **data)
        if status is not None and status != TriageStatus.OPEN and note_for_timeline:
            label = TriageStatus(status).label
            title = (
                f"Finding {label.lower()}: {rows[0][3]}"
                if len(pks) == 1
                else f"{len(pks):,} findings marked {label.lower()}"
            )
            event = TimelineEvent.objects.create(
                case=case, kind=TimelineKind.FINDING, author=user, title=title[:300], body=reason
            )
            through = TimelineEvent.findings.through
            through.objects.bulk_create(
                [through(timelineevent_id=event.pk, finding_id=pk) for pk in pks], batch_size=900
            )
    return len(pks)


def comment(case: Case, user, finding: Finding, body: str) -> FindingComment:
    body = body.strip()
    if not body:
        raise ActionError("Write a comment first.")
    with transaction.atomic():
        made = FindingComment.objects.create(finding=finding, author=user, body=body)
        audit(case, user, "finding.comment", finding=finding.pk, comment=made.pk)
    return made


# --- timeline and notes ----------------------------------------------------------------------------------


def add_timeline_entry(
    case: Case,
    user,
    *,
    occurred_at,
    title: str,
    body: str = "",
    kind: str = TimelineKind.MANUAL,
    findings=(),
    evidence=(),
) -> TimelineEvent:
    with transaction.atomic():
        event = TimelineEvent.objects.create(
            case=case, kind=kind, author=user, occurred_at=occurred_at, title=title[:300], body=body
        )
        if findings:
            event.findings.set(findings)
        if evidence:
            event.evidence.set(evidence)
        audit(
            case,
            user,
            "timeline.added",
            entry=event.pk,
            title=event.title,
            occurred_at=occurred_at.isoformat(),
            findings=[f.pk for f in findings],
            evidence=[e.pk for e in evidence],
        )
    return event


def edit_timeline_entry(
    case: Case, user, event: TimelineEvent, *, occurred_at, title: str, body: str
) -> None:
    before = {"occurred_at": event.occurred_at.isoformat(), "title": event.title, "body": event.body}
    after = {"occurred_at": occurred_at.isoformat(), "title": title[:300], "body": body}
    if before == after:
        return
    with transaction.atomic():
        event.occurred_at, event.title, event.body = occurred_at, title[:300], body
        event.save(update_fields=["occurred_at", "title", "body"])
        audit(case, user, "timeline.edited", entry=event.pk, before=before, after=after)


def save_note(case: Case, user, *, title: str, body: str, note: Note | None = None) -> Note:
    title = title.strip()[:200] or "Untitled note"
    now = timezone.now()
    with transaction.atomic():
        if note is None:
            note = Note.objects.create(
                case=case,
                title=title,
                body=body,
                author=user,
                updated_by=user,
                created_at=now,
                updated_at=now,
            )
            action, before = "note.added", None
        else:
            if note.title == title and note.body == body:
                return note
            before = {"title": note.title, "chars": len(note.body)}
            note.title, note.body, note.updated_at, note.updated_by = title, body, now, user
            note.save(update_fields=["title", "body", "updated_at", "updated_by"])
            action = "note.edited"
        revision = NoteRevision.objects.create(note=note, title=title, body=body, editor=user, at=now)
        audit(
            case,
            user,
            action,
            note=note.pk,
            revision=revision.pk,
            before=before,
            after={"title": title, "chars": len(body)},
        )
    return note


# --- removals (the API's DELETE; the audit log keeps what was removed) -----------------------------------


def delete_timeline_entry(case: Case, user, event: TimelineEvent) -> None:
    """Remove a manual entry or heading; the stored record of status, triage and checklist changes stays."""
    if event.kind not in (TimelineKind.MANUAL, TimelineKind.HEADING):
        raise ActionError("Only manual entries and headings can be deleted.")
    with transaction.atomic():
        audit(
            case,
            user,
            "timeline.deleted",
            entry=event.pk,
            before={
                "kind": event.kind,
                "occurred_at": event.occurred_at.isoformat(),
                "title": event.title,
                "body": event.body,
            },
        )
        event.delete()


def delete_item(case: Case, user, item: ChecklistItem) -> None:
    with transaction.atomic():
        audit(
            case,
            user,
            "checklist.item.deleted",
            item=item.pk,
            checklist=item.checklist_id,
            before={"text": item.text, "done": item.done, "owner": _plain(item.owner)},
        )
        item.delete()


def delete_checklist(case: Case, user, checklist: Checklist) -> None:
    with transaction.atomic():
        audit(
            case,
            user,
            "checklist.deleted",
            checklist=checklist.pk,
            before={"title": checklist.title, "slug": checklist.slug, "items": checklist.items.count()},
        )
        checklist.delete()
