"""What the image config says, for people: a summary with secrets redacted, and its build history mapped
onto layers. Everything here comes from the image and is attacker-controlled: it is only ever rendered
as escaped text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from .redact import redact_env, redact_pair, redact_text

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value) -> datetime | None:
    """An ISO-8601 time from a config (nanosecond fractions and "Z" allowed), as an aware UTC datetime."""
    if not value or not isinstance(value, str):
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year < 1980:
        return None  # the epoch or "0001-01-01": reproducible builds; no real time
    return parsed.astimezone(UTC)


def _split(image) -> tuple[dict, dict]:
    """(the whole config document, its runtime "config" part), whichever of the two the row stores."""
    doc = image.config if isinstance(image.config, dict) else {}
    inner = doc.get("config")
    if isinstance(inner, dict):
        return doc, inner
    inner = doc.get("Config")
    if isinstance(inner, dict):
        return doc, inner
    return doc, doc


def _words(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, list):
        return " ".join(str(part) for part in value)
    return str(value)


@dataclass
class HistoryStep:
    created: datetime | None
    created_raw: str
    created_by: str
    comment: str
    empty_layer: bool
    layer_index: int | None


def history(image) -> list[HistoryStep]:
    doc, _inner = _split(image)
    steps = []
    layer = 0
    entries = doc.get("history")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        empty = bool(entry.get("empty_layer"))
        steps.append(
            HistoryStep(
                created=parse_time(entry.get("created")),
                created_raw=str(entry.get("created", ""))[:64],
                created_by=redact_text(str(entry.get("created_by", ""))),
                comment=str(entry.get("comment", "")),
                empty_layer=empty,
                layer_index=None if empty else layer,
            )
        )
        if not empty:
            layer += 1
    return steps


def layer_times(image) -> dict[int, HistoryStep]:
    return {step.layer_index: step for step in history(image) if step.layer_index is not None}


def summary(image) -> dict:
    doc, inner = _split(image)
    labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
    user = image.user or str(inner.get("User") or "")
    return {
        "user": user,
        "runs_as_root": user in ("", "root", "0", "0:0", "root:root"),
        "env": redact_env(inner.get("Env") if isinstance(inner.get("Env"), list) else []),
        "entrypoint": redact_text(_words(inner.get("Entrypoint"))),
        "cmd": redact_text(_words(inner.get("Cmd"))),
        "workdir": str(inner.get("WorkingDir") or ""),
        "labels": [(str(k), *redact_pair(str(k), str(v))) for k, v in sorted(labels.items())],
        "ports": sorted((inner.get("ExposedPorts") or {}).keys())
        if isinstance(inner.get("ExposedPorts"), dict)
        else [],
        "volumes": sorted((inner.get("Volumes") or {}).keys())
        if isinstance(inner.get("Volumes"), dict)
        else [],
        "stop_signal": str(inner.get("StopSignal") or ""),
        "author": str(doc.get("author") or ""),
        "created": image.created or str(doc.get("created") or ""),
        "architecture": "/".join(str(doc[k]) for k in ("os", "architecture", "variant") if doc.get(k)),
        "tags": [str(tag) for tag in image.repo_tags or []],
    }
