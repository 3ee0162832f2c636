"""Checklist items that findings suggest: a leaked credential proposes its rotation, a mutable tag proposes
pinning, a YARA hit proposes a runner wipe, a missing or bad signature proposes enforcement."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q

from scanner.models import Finding, TriageStatus

from ..models import Case, ChecklistItem
from .redact import AWS_KEY_ID, mask, redact_text

LIMIT = 200


@dataclass
class Suggestion:
    key: str
    checklist: str  # checklist template slug
    text: str
    finding: Finding


_EXCERPT = re.compile(
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]*(?:…|\.\.\.|\*{2,})[A-Z0-9]*(?:\[[^\]]{0,80}\])?"
)
_NAME = re.compile(r"\b([A-Z][A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)[A-Z0-9_]*)\b")


def secret_label(finding: Finding) -> str:
    """A recognisable but redacted name for a credential: the masked AWS key id (as the rule pack's
    redacted excerpt shows it), else the variable's name, else the secret's hash prefix."""
    excerpt = getattr(finding, "excerpt", "") or ""
    text = f"{finding.title} {finding.detail} {excerpt}"
    key_id = AWS_KEY_ID.search(text)
    if key_id:
        return mask(key_id.group(0)).split(" (")[0]
    masked = _EXCERPT.search(excerpt) or _EXCERPT.search(text)
    if masked:
        return masked.group(0)
    name = _NAME.search(text)
    if name:
        return name.group(1)
    if finding.sha256:
        return f"the credential with SHA-256 {finding.sha256[:12]}…"
    return redact_text(finding.title)[:80]


def _tag(finding: Finding) -> str:
    tags = finding.image.repo_tags if finding.image else []
    return str(tags[0]) if tags else "the image"


def suggest(finding: Finding) -> Suggestion | None:
    rule = finding.rule_id
    where = finding.path or "the image config"
    if rule.startswith("secret."):
        label = secret_label(finding)
        return Suggestion(
            key=f"rotate:{finding.sha256 or label}:{where}",
            checklist="key-rotation",
            text=f"Rotate {label} found in {where}",
            finding=finding,
        )
    if rule == "reference.mutable-tag":
        digest = finding.image.manifest_digest if finding.image else ""
        tag = _tag(finding)
        return Suggestion(
            key=f"pin:{tag}",
            checklist="rebuild-pinned-digest",
            text=f"Pin {tag} to a reviewed digest" + (f" (not {digest})" if digest else ""),
            finding=finding,
        )
    if rule == "malware.yara":
        return Suggestion(
            key=f"wipe:{finding.image_id}",
            checklist="ci-runner-wipe",
            text=f"Wipe every CI runner that built or ran {_tag(finding)} ({redact_text(finding.title)})",
            finding=finding,
        )
    if rule in ("signature.missing", "signature.invalid"):
        return Suggestion(
            key=f"sign:{finding.image_id}",
            checklist="enforce-signatures",
            text=f"Enforce signature verification for {_tag(finding)}",
            finding=finding,
        )
    return None


def suggestions(case: Case) -> list[Suggestion]:
    """Open suggestions, one per key, skipping those already on a checklist and dismissed findings."""
    findings = (
        Finding.objects.filter(case=case)
        .filter(
            Q(rule_id__startswith="secret.")
            | Q(
                rule_id__in=[
                    "reference.mutable-tag",
                    "malware.yara",
                    "signature.missing",
                    "signature.invalid",
                ]
            )
        )
        .exclude(status__in=[TriageStatus.FALSE_POSITIVE, TriageStatus.RESOLVED])
        .select_related("image")
        .only(
            "pk",
            "rule_id",
            "title",
            "detail",
            "path",
            "sha256",
            "excerpt",
            "image_id",
            "image__repo_tags",
            "image__manifest_digest",
        )
        .order_by("pk")[:LIMIT]
    )
    taken = set(
        ChecklistItem.objects.filter(checklist__case=case)
        .exclude(suggestion_key="")
        .values_list("suggestion_key", flat=True)
    )
    out: dict[str, Suggestion] = {}
    for finding in findings:
        suggestion = suggest(finding)
        if suggestion and suggestion.key not in taken and suggestion.key not in out:
            out[suggestion.key] = suggestion
    return list(out.values())
