"""A worked incident on top of a scanned case, for the post-mortem's tests, benchmark and demo: the
narrative written, findings triaged (confirmed, false positive, accepted risk), remediation checklists
partly done with owners and due dates, the status moved on, and manual timeline entries.

Everything goes through ``cases.workspace.actions``, as the UI would, so the audit log, the timeline and
the custody log look the way they do in real use.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from scanner.models import Finding, TriageStatus

from ..models import Case, CaseStatus, ChecklistItem, Role, TimelineEvent
from ..workspace import actions

NARRATIVE = {
    "summary": (
        "An attacker pushed a poisoned build of `shop/web:latest` during a three-minute window; production "
        "pulled it by tag. It ran a cryptominer with a setuid helper, hid its files with whiteouts and "
        "preloaded a patched `libc.so.6`. Credentials in the image config were exposed to everyone who "
        "could pull it."
    ),
    "impact": (
        "- 3 production nodes ran the miner for about **3 hours** (CPU saturation, slow checkout)\n"
        "- AWS access key `AKIAIOSFODNN7EXAMPLE` and the database password were exposed in the image `Env`\n"
        "- No evidence of data exfiltration in the VPC flow logs reviewed so far"
    ),
    "detection": (
        "CPU alerts on the web tier at 09:12 UTC; the on-call engineer found an unknown process. The image "
        "digest in the deployment did not match the release pipeline's record."
    ),
    "root_cause": (
        "The deployment referenced `shop/web:latest` (a mutable tag) and nothing verified signatures, so a "
        "push with a stolen CI token replaced the image production pulled."
    ),
    "contributing_factors": (
        "- The CI token had push rights to every repository\n"
        "- Secrets were baked into the image with `ENV` instead of build secrets\n"
        "- No admission policy required a digest or a signature"
    ),
    "actions_mitigate": (
        "1. Rotate every credential found in the image (done for AWS, database pending)\n"
        "2. Purge the poisoned digest and tag from the registry and mirrors\n"
        "3. Wipe and re-provision the CI runners"
    ),
    "actions_prevent": (
        "1. Deploy by digest only; block `:latest` at admission\n"
        "2. Enforce cosign signatures from the release pipeline's identity\n"
        "3. Scope CI tokens per repository, expire them daily"
    ),
    "lessons_went_well": "The CPU alert fired within 4 minutes and the on-call escalation worked.",
    "lessons_went_wrong": "Nobody could tell which digest `latest` had pointed to at deploy time.",
    "lessons_lucky": "The miner had no network path to the customer database subnet.",
}
CHECKLISTS = (
    "key-rotation",
    "registry-purge",
    "ci-runner-wipe",
    "rebuild-pinned-digest",
    "enforce-signatures",
)
MANUAL = [
    "CPU alert on web tier",
    "On-call engineer paged",
    "Unknown process xmrig found on node web-3",
    "Image digest mismatch confirmed",
    "Incident declared, severity critical",
    "Nodes cordoned and drained",
    "Image exported as evidence",
    "AWS key disabled in IAM",
    "Registry tag frozen",
    "CISO briefed",
]


def work_the_case(case: Case, lead, *, timeline: int = 40, triage: int = 60, seed: int = 11) -> Case:
    """Write the narrative, triage findings, add and tick checklists, add timeline entries."""
    rng = random.Random(seed)  # noqa: S311 - sample data
    actions.update_case(case, lead, dict(NARRATIVE), role=Role.LEAD)
    for slug in CHECKLISTS:
        actions.add_checklist(case, lead, slug)
    items = list(ChecklistItem.objects.filter(checklist__case=case).select_related("checklist"))
    today = timezone.now().date()
    for n, item in enumerate(items):
        changes = {"owner": lead, "due": today + timedelta(days=n % 9)}
        if n % 3 != 2:
            changes["done"] = True
        if n % 5 == 0:
            changes["note"] = "Verified by a second responder."
        actions.update_item(case, lead, item, changes)

    findings = list(Finding.objects.filter(case=case).order_by("pk").values_list("pk", "rule_id"))
    picks = findings[:triage]
    for n, (pk, rule_id) in enumerate(picks):
        if rule_id in ("file.setuid", "layer.deleted-file") and n % 2:
            status, reason = (
                TriageStatus.FALSE_POSITIVE,
                "Package-owned, unmodified; expected in the base image.",
            )
        elif n % 7 == 3:
            status, reason = TriageStatus.ACCEPTED, "Base-image behaviour; tracked in the hardening backlog."
        elif n % 5 == 4:
            status, reason = TriageStatus.RESOLVED, "Removed in the rebuilt image."
        else:
            status, reason = TriageStatus.CONFIRMED, "Reproduced from the layer; part of the attack."
        actions.triage(case, lead, ids=[pk], status=status, reason=reason)
    actions.change_status(case, lead, CaseStatus.CONTAINED, role=Role.LEAD)

    start = timezone.now() - timedelta(hours=30)
    stored = TimelineEvent.objects.filter(case=case).aggregate(n=Count("pk"))["n"]
    for n in range(max(0, timeline - stored)):
        title = MANUAL[n % len(MANUAL)] + (f" ({n // len(MANUAL) + 1})" if n >= len(MANUAL) else "")
        body = (
            ""
            if n % 3
            else f"Recorded from the bridge call; see note {n}. Next check in {rng.randint(5, 60)} min."
        )
        actions.add_timeline_entry(
            case, lead, occurred_at=start + timedelta(minutes=7 * n), title=title, body=body
        )
    return case
