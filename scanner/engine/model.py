"""Plain data the engine returns. No Django here: the web app persists these, the CLI prints them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

SCHEMA = "lowerdir.scan/v1"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class EntryType(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


class Change(StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(slots=True)
class Finding:
    rule_id: str
    severity: Severity
    title: str
    detail: str = ""
    layer_index: int | None = None
    layer_digest: str = ""
    path: str = ""
    sha256: str = ""
    fingerprint: str = ""
    # Added by the rule pack (issue 4). Never a whole secret: ``excerpt`` is redacted
    # (first characters, length and hash of the matched value).
    excerpt: str = ""
    remediation: str = ""
    hidden_layer_index: int | None = None  # the layer that deleted or shadowed the file (still in the image)
    related: list[str] = field(default_factory=list)  # fingerprints of findings on the same content
    suppressed: bool = False
    suppression: str = ""  # why, by whom, from which file: suppressed findings stay visible

    def __post_init__(self) -> None:
        if not self.fingerprint:
            key = "\0".join([self.rule_id, self.layer_digest, self.path, self.sha256, self.title])
            self.fingerprint = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def fingerprint(rule_id: str, diff_id: str, path: str, sha256: str, key: str = "") -> str:
    """A finding's stable identity: rule + layer diff_id + path + content hash (+ what matched).

    The diff_id (not the compressed blob digest) is used, so the same image saved as a docker archive,
    gzip or zstd OCI gives the same fingerprints, and a re-scan keeps the triage of the last one.
    """
    text = "\0".join([rule_id, diff_id, path, sha256, key])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(slots=True)
class FileEntry:
    """One tar member of one layer (whiteouts are recorded as DELETED entries, never as files)."""

    path: str  # normalised, absolute ("/usr/bin/ls")
    layer_index: int
    type: EntryType
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    link_target: str = ""
    sha256: str = ""
    flags: frozenset[str] = frozenset()  # setuid setgid sticky world-writable executable elf hidden ...
    change: Change = Change.ADDED
    visible: bool = True  # present in the final merged filesystem


@dataclass(slots=True)
class GraveyardEntry:
    """An entry added by one layer and deleted (whiteout/opaque) or shadowed by a later one."""

    path: str
    type: EntryType
    added_layer: int
    hidden_layer: int
    how: str  # "whiteout" | "opaque" | "shadowed"
    sha256: str = ""
    size: int = 0
    mode: int = 0


@dataclass(slots=True)
class LayerResult:
    index: int
    digest: str
    diff_id: str = ""  # from the config
    media_type: str = ""
    size: int = 0  # compressed blob size
    uncompressed_size: int = 0
    created_by: str = ""
    empty_history: list[str] = field(default_factory=list)
    files_added: int = 0
    files_modified: int = 0
    files_deleted: int = 0
    trusted: bool = True  # False when a digest did not verify
    # Added by the engine (not in the JSON report): what was actually read.
    actual_digest: str = ""  # SHA-256 of the blob as read
    actual_diff_id: str = ""  # SHA-256 of the uncompressed tar as read ("" if it could not be read whole)
    compression: str = ""  # gzip | zstd | none, sniffed from the magic bytes
    complete: bool = True  # False when a bound or a corrupt stream stopped the walk: files are missing


@dataclass(slots=True)
class Package:
    """One installed package, as its database records it (dpkg status or apk installed)."""

    manager: str  # dpkg | apk
    name: str
    version: str
    arch: str = ""
    source: str = ""  # source package (dpkg Source:, apk o: origin)
    license: str = ""
    files: int = 0  # files the database lists for it


@dataclass(slots=True)
class ImageResult:
    manifest_digest: str
    config_digest: str
    repo_tags: list[str] = field(default_factory=list)
    platform: str = ""
    user: str = ""
    created: str = ""
    config: dict = field(default_factory=dict)
    layers: list[LayerResult] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    graveyard: list[GraveyardEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    trailing_history: list[str] = field(default_factory=list)  # empty-layer steps after the last layer
    packages: list[Package] = field(default_factory=list)  # from the package databases (the SBOM)
    distro: dict = field(default_factory=dict)  # /etc/os-release of the final tree: ID, VERSION_ID, ...


@dataclass(slots=True)
class SourceInfo:
    path: str
    format: str  # docker-archive | oci-archive | oci-layout | registry
    sha256: str = ""


@dataclass(slots=True)
class Stats:
    layers: int = 0
    files: int = 0
    bytes_read: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class ScanReport:
    source: SourceInfo
    images: list[ImageResult] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


class ScanError(Exception):
    """The source cannot be scanned (not an image, truncated, unreadable JSON, missing blob...).

    The message is one readable line for the user: the CLI prints it and exits 2, the web app stores it
    on the failed ScanRun.
    """
