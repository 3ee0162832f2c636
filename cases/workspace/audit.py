"""Verification of the hash-chained audit log.

The chain is global (each event stores the hash of the event before it, whatever its case). Verifying a
case checks each of its events: its stored hash must match its recomputed content hash, and its
``prev_hash`` must equal the hash of the event just before it in the whole log. Verifying the whole log
walks it in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery

from ..models import AuditEvent, Case


@dataclass
class Verification:
    scope: str
    checked: int = 0
    broken: list[tuple[int, str]] = field(default_factory=list)  # (event pk, what is wrong)

    @property
    def ok(self) -> bool:
        return not self.broken


def verify_case(case: Case) -> Verification:
    previous = AuditEvent.objects.filter(pk__lt=OuterRef("pk")).order_by("-pk").values("hash")[:1]
    events = AuditEvent.objects.filter(case=case).annotate(actual_prev=Subquery(previous)).order_by("pk")
    result = Verification(scope=case.key)
    for event in events.iterator(chunk_size=2000):
        result.checked += 1
        _check(event, event.actual_prev or "", result)
    return result


def verify_all() -> Verification:
    result = Verification(scope="the whole log")
    previous = ""
    for event in AuditEvent.objects.order_by("pk").iterator(chunk_size=2000):
        result.checked += 1
        _check(event, previous, result)
        previous = event.hash
    return result


def _check(event: AuditEvent, expected_prev: str, result: Verification) -> None:
    if event.compute_hash() != event.hash:
        result.broken.append((event.pk, "content does not match its hash (edited after it was written)"))
    if event.prev_hash != expected_prev:
        result.broken.append(
            (event.pk, "does not link to the event before it (an event was removed or inserted)")
        )
