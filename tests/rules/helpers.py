"""Small synthetic images with package databases, for the rule tests."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from scanner.engine import ScanOptions, scan
from scanner.engine.model import Finding, ImageResult
from tests.imagefactory import Entry, build_image

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8)
OS_RELEASE = (
    b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
)
# The AWS documentation's example credentials: the scanner must report them like real ones.
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def dpkg_base(
    files: dict[str, tuple[bytes, int]],
    *,
    package: str = "libc6",
    conffiles: dict[str, bytes] | None = None,
    extra: list | None = None,
) -> list:
    """A base layer: ``files`` (path -> (data, mode)) owned by ``package`` in a dpkg database."""
    conffiles = conffiles or {}
    entries: list = [
        Entry("/etc/", type="dir", mode=0o755),
        ("/etc/debian_version", b"12.8\n"),
        ("/etc/os-release", OS_RELEASE),
        (
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/bash\n"
            b"admin:x:0:0::/home/admin:/bin/sh\n"
            b"app:x:10001:10001::/app:/bin/sh\n",
        ),
    ]
    for path, data in conffiles.items():
        entries.append((path, data))
    for path, (data, mode) in files.items():
        entries.append(Entry(path, data, mode=mode))
    md5sums = "".join(f"{md5(data)}  {path.lstrip('/')}\n" for path, (data, _m) in files.items())
    conf = "".join(f" {path} {md5(data)}\n" for path, data in conffiles.items())
    status = (
        f"Package: {package}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u9\n"
        f"Source: glibc\n" + (f"Conffiles:\n{conf}" if conf else "") + "Description: test\n\n"
        "Package: removed\nStatus: deinstall ok config-files\nVersion: 1\n\n"
    )
    entries += [
        ("/var/lib/dpkg/status", status.encode()),
        (f"/var/lib/dpkg/info/{package}:amd64.md5sums", md5sums.encode()),
    ]
    return entries + (extra or [])


def apk_base(files: dict[str, tuple[bytes, int]], *, package: str = "musl") -> list:
    lines = [f"P:{package}", "V:1.2.4-r2", "A:x86_64", "o:musl", "L:MIT"]
    current = None
    for path, (data, _mode) in sorted(files.items()):
        directory, _, name = path.lstrip("/").rpartition("/")
        if directory != current:
            lines.append(f"F:{directory}")
            current = directory
        sha1 = hashlib.sha1(data, usedforsecurity=False).digest()
        lines += [f"R:{name}", f"Z:Q1{base64.b64encode(sha1).decode()}"]
    entries: list = [
        ("/etc/alpine-release", b"3.19.1\n"),
        ("/etc/os-release", b'ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'),
    ]
    entries += [Entry(path, data, mode=mode) for path, (data, mode) in files.items()]
    entries.append(("/lib/apk/db/installed", ("\n".join(lines) + "\n\n").encode()))
    return entries


def scan_layers(
    tmp_path: Path,
    layers: list,
    *,
    name: str = "img.tar",
    fmt: str = "oci-archive",
    options: ScanOptions | None = None,
    **image,
) -> ImageResult:
    built = build_image(tmp_path / name, layers, fmt=fmt, **image)
    [result] = scan(str(built.path), options=options or ScanOptions()).images
    return result


def by_rule(image: ImageResult, rule_id: str) -> list[Finding]:
    return [f for f in image.findings if f.rule_id == rule_id]


def one(image: ImageResult, rule_id: str, path: str = "") -> Finding:
    found = [f for f in by_rule(image, rule_id) if not path or f.path == path]
    assert len(found) == 1, (rule_id, path, [(f.rule_id, f.path, f.detail) for f in image.findings])
    return found[0]


LIBC_NAME = "/usr/lib/x86_64-linux-gnu/libc.so.6"
