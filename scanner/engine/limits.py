"""Bounds on hostile input. Every loop over attacker-controlled data is limited by one of these."""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class Limits:
    """Safe defaults for one scan. Hitting a layer bound ends that layer with an
    ``integrity.limit-exceeded`` finding; hitting a document bound stops the scan with a ScanError."""

    max_members: int = 2_000_000  # tar headers per layer (meta headers such as PAX count too)
    max_layer_bytes: int = 64 * GiB  # uncompressed bytes per layer
    max_ratio: int = 250  # uncompressed / compressed, checked while streaming...
    ratio_grace_bytes: int = 64 * MiB  # ...once this much has come out (small layers may compress well)
    max_member_size: int = 32 * GiB  # one tar member's data
    max_json_bytes: int = 4 * MiB  # manifest, config, index documents
    max_meta_bytes: int = 1 * MiB  # one PAX or GNU long-name header's data
    max_path_length: int = 4096  # bytes in a member name or link target
    max_path_depth: int = 256  # components in a member name
    max_index_depth: int = 4  # index -> index -> manifest nesting
    max_manifests: int = 256  # image manifests reachable from the top index
    max_layers: int = 512  # layers in one image
    max_archive_members: int = 100_000  # members of the outer docker/oci archive
    max_link_hops: int = 8  # symlink chain inside the outer archive
    max_seconds: float = 6 * 3600.0  # wall-clock time per layer
    # Content rules (issue 4): files larger than these are hashed but not pattern-scanned (counted).
    max_scan_text: int = 4 * MiB  # text: scripts, config, source
    max_scan_elf: int = 16 * MiB  # ELF binaries and libraries
    max_scan_seconds: float = 10.0  # YARA-X time for one file
    max_capture: int = 64 * MiB  # one package-database (or other rule input) file read whole


DEFAULT_LIMITS = Limits()


class LimitExceeded(Exception):
    """A bound from :class:`Limits` was hit while reading a layer."""

    def __init__(self, bound: str, detail: str) -> None:
        super().__init__(f"{bound}: {detail}")
        self.bound = bound
        self.detail = detail
