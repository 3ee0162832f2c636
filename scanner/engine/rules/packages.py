"""Package databases from the merged tree: dpkg (``status``, ``status.d``, ``info/*.md5sums``,
``Conffiles:``, ``diversions``) and apk (``lib/apk/db/installed``, ``Z:Q1`` base64 SHA-1).

Parsing is strict about structure and lenient about content: a database is attacker-controlled text, so
every field is bounded and anything unparseable is skipped, never trusted.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from ..model import Package

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(slots=True)
class Owned:
    """What the database says about one path."""

    package: str
    digest: str  # hex md5 (dpkg) or sha1 (apk); "" when the database gives none
    algorithm: str  # "md5" | "sha1"
    conffile: bool = False


@dataclass
class PackageDB:
    manager: str  # dpkg | apk
    packages: list[Package] = field(default_factory=list)
    files: dict[str, Owned] = field(default_factory=dict)  # absolute path as listed -> owner
    diversions: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (diverted to, by package)
    source: str = ""  # where it was read from, for messages


def paragraphs(text: str) -> list[dict[str, str]]:
    """RFC 822-style stanzas (dpkg status): continuation lines start with a space."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, key = {}, ""
            continue
        if line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip()
        current[key] = value.strip()
    if current:
        out.append(current)
    return out


def _installed(stanza: dict[str, str]) -> bool:
    status = stanza.get("Status", "install ok installed").split()
    return len(status) == 3 and status[2] not in ("not-installed", "config-files")


def parse_dpkg(
    status: bytes, status_d: dict[str, bytes], md5sums: dict[str, bytes], diversions: bytes | None
) -> PackageDB:
    """``status`` (and/or distroless ``status.d/*`` stanzas), ``md5sums`` by package file name."""
    db = PackageDB("dpkg", source="/var/lib/dpkg/status")
    stanzas = paragraphs(status.decode("utf-8", "replace")) if status else []
    for name, data in sorted(status_d.items()):
        if not name.endswith(".md5sums"):
            stanzas.extend(paragraphs(data.decode("utf-8", "replace")))
    installed: dict[str, Package] = {}
    for stanza in stanzas:
        name = stanza.get("Package", "")
        if not name or not _installed(stanza):
            continue
        source = stanza.get("Source", "").split(" ")[0]
        pkg = Package("dpkg", name, stanza.get("Version", ""), stanza.get("Architecture", ""), source)
        installed[name] = pkg
        for line in stanza.get("Conffiles", "").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("/") and "obsolete" not in parts[2:]:
                digest = parts[1] if _HEX32.match(parts[1]) else ""
                db.files[parts[0]] = Owned(name, digest, "md5", conffile=True)
                pkg.files += 1
    for filename, data in sorted(md5sums.items()):
        base = filename.rsplit("/", 1)[-1].removesuffix(".md5sums")
        owner = base.split(":", 1)[0]
        pkg = installed.get(owner)
        if pkg is None:
            continue  # an md5sums file left behind by a removed package
        for line in data.decode("utf-8", "replace").splitlines():
            digest, _, path = line.partition(" ")
            path = path.strip()
            if not path or not _HEX32.match(digest):
                continue
            path = "/" + path.lstrip("/")
            if path not in db.files:  # a conffile's record (status) wins
                db.files[path] = Owned(owner, digest, "md5")
                pkg.files += 1
    if diversions:
        lines = diversions.decode("utf-8", "replace").splitlines()
        for i in range(0, len(lines) - 2, 3):
            db.diversions[lines[i]] = (lines[i + 1], lines[i + 2])
    db.packages = sorted(installed.values(), key=lambda p: p.name)
    return db


def q1_to_hex(value: str) -> str:
    """apk's ``Z:Q1<base64 SHA-1>`` as hex ("" if it is not that)."""
    if not value.startswith("Q1"):
        return ""
    try:
        raw = base64.b64decode(value[2:], validate=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.hex() if len(raw) == 20 else ""


def parse_apk(installed: bytes) -> PackageDB:
    db = PackageDB("apk", source="/lib/apk/db/installed")
    pkg: Package | None = None
    directory = ""
    last_file = ""
    for raw in installed.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            pkg, directory, last_file = None, "", ""
            continue
        key, sep, value = raw.partition(":")
        if not sep or len(key) != 1:
            continue
        if key == "P":
            pkg = Package("apk", value, "")
            db.packages.append(pkg)
        elif pkg is None:
            continue
        elif key == "V":
            pkg.version = value
        elif key == "A":
            pkg.arch = value
        elif key == "o":
            pkg.source = value
        elif key == "L":
            pkg.license = value
        elif key == "F":
            directory = value.strip("/")
        elif key == "R":
            last_file = "/" + (f"{directory}/{value}" if directory else value)
            db.files[last_file] = Owned(pkg.name, "", "sha1")
            pkg.files += 1
        elif key == "Z" and last_file:
            db.files[last_file].digest = q1_to_hex(value)
    db.packages.sort(key=lambda p: p.name)
    return db


def parse_os_release(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines()[:200]:
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key.strip()):
            out[key.strip()] = value.strip().strip("\"'")[:200]
    return out


def parse_passwd(data: bytes) -> dict[str, int]:
    """user name -> uid."""
    out: dict[str, int] = {}
    for line in data.decode("utf-8", "replace").splitlines()[:10000]:
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            out.setdefault(parts[0], int(parts[2]))
    return out
