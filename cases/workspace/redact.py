"""Redaction of secrets in strings that come from an image (config Env, labels, history, commands).

A secret is never shown whole in the UI: the value is masked, keeping only enough to recognise it (the
first and last four characters of a long value, nothing of a short one) and its length.
"""

from __future__ import annotations

import re

# Names that carry credentials: *PASSWORD*, *TOKEN*, *SECRET*, API keys, access keys, private keys...
SECRET_NAME = re.compile(
    r"(PASS(WORD|WD|PHRASE)?$|PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|"
    r"AUTH|SESSION|COOKIE|_DSN$|^DSN$|SIGNING_?KEY|ENCRYPTION_?KEY|_KEY$)",
    re.IGNORECASE,
)
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")
URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s/]+)(@)")
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
)
# NAME=value or NAME: value, where NAME looks like a credential (prose such as "credentials in the
# config" is left alone: a separator is required) ...
ASSIGNMENT = re.compile(
    r"(?i)\b([A-Z0-9_.-]*(?:PASS(?:WORD|WD)?|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)"
    r"[A-Z0-9_.-]*)(\s*[=:]\s*)(['\"]?)([^\s'\"]+)"
)
# ... and command-line flags: --password VALUE, -p=VALUE style with a credential-like flag name.
FLAG = re.compile(
    r"(?i)(?<![\w-])(--?[a-z0-9-]*(?:pass(?:word|wd)?|secret|token|api-?key|access-?key)[a-z0-9-]*)(\s+)"
    r"(['\"]?)([^\s'\"-][^\s'\"]*)"
)
MASK = "••••"


def mask(value: str) -> str:
    """A masked value: the first and last four characters of a long value, nothing of a short one."""
    if not value:
        return ""
    if len(value) >= 16:
        return f"{value[:4]}…{value[-4:]} ({len(value)} chars)"
    return f"{MASK} ({len(value)} chars)"


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name or ""))


def redact_text(text: str) -> str:
    """Mask credentials inside free text: AWS key ids, passwords in URLs, NAME=value assignments, PEM keys."""
    if not text:
        return text or ""
    text = PRIVATE_KEY_BLOCK.sub("-----BEGIN PRIVATE KEY----- [redacted]", text)
    text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{mask(m.group(4))}", text)
    text = FLAG.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{mask(m.group(4))}", text)
    return AWS_KEY_ID.sub(lambda m: mask(m.group(0)), text)


def redact_pair(name: str, value: str) -> tuple[str, bool]:
    """The value to show for ``name=value`` (an Env entry or a label), and whether it was redacted."""
    value = "" if value is None else str(value)
    if is_secret_name(name):
        return mask(value), bool(value)
    shown = redact_text(value)
    return shown, shown != value


def redact_env(entries) -> list[tuple[str, str, bool]]:
    """Config ``Env`` (a list of ``NAME=value``) as (name, shown value, redacted) triples."""
    rows = []
    for entry in entries or []:
        name, _sep, value = str(entry).partition("=")
        shown, redacted = redact_pair(name, value)
        rows.append((name, shown, redacted))
    return rows
