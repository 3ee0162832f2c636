"""Image sources: a docker/oci archive (a tar, indexed once and read by offset) or an OCI layout dir.

Nothing is unpacked. Names that come from the image (manifest paths, digests) are resolved here and
only here: archive names are normalised and must stay inside the archive (symlinks between members are
followed with a hop bound, as Docker writes repeated layers that way); in a layout directory only
``index.json``, ``oci-layout`` and ``blobs/<alg>/<hex>`` with a validated digest are ever opened, and
the result must be a regular file inside the directory.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
from dataclasses import dataclass

from .compression import GZIP_MAGIC, ZSTD_MAGIC, BlobLocation
from .limits import LimitExceeded, Limits
from .model import ScanError
from .tarstream import BLOCK, DIR, FILE, HARDLINK, SYMLINK, TarFormatError, header_checksum_ok, iter_headers

DIGEST_RE = re.compile(r"^(sha256):([a-f0-9]{64})$|^(sha512):([a-f0-9]{128})$")
PREFIXES = {"docker-archive": "docker-archive", "oci-archive": "oci-archive", "oci": "oci-layout"}


@dataclass(frozen=True, slots=True)
class SourceSpec:
    path: str
    kind: str = ""  # docker-archive | oci-archive | oci-layout | registry ("" = detect)
    ref: str = ""  # image reference inside the source (a tag or ref name), from "oci:DIR:ref"


def parse_spec(source: str) -> SourceSpec:
    """``PATH`` or ``docker-archive:PATH[:REF]``, ``oci-archive:PATH[:REF]``, ``oci:DIR[:REF]``, or
    ``docker://host/repo[:tag][@digest]`` (kind "registry": the path is the reference)."""
    if not source:
        raise ScanError("no source given")
    for prefix, kind in PREFIXES.items():
        if source.startswith(prefix + ":") and not os.path.exists(source):
            rest = source[len(prefix) + 1:]
            if os.path.exists(rest):
                return SourceSpec(rest, kind)
            path, sep, ref = rest.partition(":")
            if sep and os.path.exists(path):
                return SourceSpec(path, kind, ref)
            raise ScanError(f"no such file or directory: {rest}")
    if source.startswith("docker://"):
        return SourceSpec(source[len("docker://"):], "registry")  # pulled first: see scanner.engine.registry
    return SourceSpec(source)


def check_digest(digest: object, what: str) -> tuple[str, str]:
    """A descriptor digest as (algorithm, hex), or ScanError: digests become file names."""
    if not isinstance(digest, str):
        raise ScanError(f"{what}: digest is missing or not a string")
    m = DIGEST_RE.match(digest)
    if not m:
        raise ScanError(f"{what}: invalid digest {digest[:100]!r}")
    return (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))


class Source:
    """A readable image source. Subclasses: :class:`ArchiveSource`, :class:`LayoutSource`."""

    kind = ""

    def __init__(self, spec: SourceSpec, limits: Limits) -> None:
        self.spec = spec
        self.path = spec.path
        self.limits = limits

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def locate(self, name: str, what: str) -> BlobLocation:
        """Where ``name`` (an archive path, or ``blobs/...``) is; ScanError if missing or unsafe."""
        raise NotImplementedError

    def blob(self, digest: object, what: str) -> BlobLocation:
        alg, hexd = check_digest(digest, what)
        return self.locate(f"blobs/{alg}/{hexd}", f"{what} blob {alg}:{hexd[:12]}")

    def read(self, loc: BlobLocation, what: str) -> bytes:
        """A whole small document (JSON), bounded by ``max_json_bytes``."""
        if loc.size > self.limits.max_json_bytes:
            raise ScanError(f"{what} is {loc.size} bytes, over the {self.limits.max_json_bytes}-byte bound "
                            "for JSON documents")
        try:
            fd = os.open(loc.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                data = os.pread(fd, loc.size, loc.offset)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ScanError(f"cannot read {what}: {exc.strerror or exc}") from None
        if len(data) != loc.size:
            raise ScanError(f"truncated archive: {what} is cut short")
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArchiveSource(Source):
    """An uncompressed tar (docker-archive or oci-archive) indexed by member offsets."""

    def __init__(self, spec: SourceSpec, limits: Limits) -> None:
        super().__init__(spec, limits)
        self.members: dict[str, tuple[bytes, int, int, str]] = {}  # name -> (type, offset, size, link)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ScanError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        try:
            size = os.fstat(fd).st_size
            try:
                headers, self.ended = iter_headers(lambda pos, n: os.pread(fd, n, pos), size, limits,
                                       limits.max_archive_members)
            except TarFormatError as exc:
                raise ScanError(f"not a readable image archive: {exc}") from None
            except LimitExceeded as exc:
                raise ScanError(f"image archive exceeds a bound: {exc.detail}") from None
        finally:
            os.close(fd)
        for name, link, typeflag, offset, msize in headers:
            norm = _norm_member(name)
            if norm is None:
                continue  # names escaping the archive are never addressable
            if typeflag in (FILE, SYMLINK, HARDLINK, DIR):
                self.members[norm] = (typeflag, offset, msize, link)
        self.kind = spec.kind or ("docker-archive" if "manifest.json" in self.members else
                                  "oci-archive" if "index.json" in self.members else "")
        if not self.kind:
            raise ScanError("not an image archive: it has neither manifest.json nor index.json"
                            + self._truncation_hint())

    def _truncation_hint(self) -> str:
        return "" if self.ended else " (and no end-of-archive marker: is the file truncated?)"

    def exists(self, name: str) -> bool:
        norm = _norm_member(name)
        return norm is not None and norm in self.members

    def locate(self, name: str, what: str) -> BlobLocation:
        norm = _norm_member(name)
        if norm is None:
            raise ScanError(f"{what}: path {name[:200]!r} points outside the archive")
        for _ in range(self.limits.max_link_hops + 1):
            member = self.members.get(norm)
            if member is None:
                raise ScanError(f"{what}: {name[:200]!r} is missing from the archive"
                                + self._truncation_hint())
            typeflag, offset, size, link = member
            if typeflag == FILE:
                return BlobLocation(self.path, offset, size, norm)
            if typeflag == DIR:
                raise ScanError(f"{what}: {name[:200]!r} is a directory")
            base = posixpath.dirname(norm) if typeflag == SYMLINK else ""
            target = _norm_member(posixpath.join(base, link)) if not link.startswith("/") else None
            if target is None:
                raise ScanError(f"{what}: {name[:200]!r} links outside the archive")
            norm = target
        raise ScanError(f"{what}: {name[:200]!r} is a chain of more than {self.limits.max_link_hops} links")


class LayoutSource(Source):
    """An OCI image layout directory. Only fixed names and digest-derived names are opened."""

    kind = "oci-layout"
    FIXED = ("index.json", "oci-layout")

    def __init__(self, spec: SourceSpec, limits: Limits) -> None:
        super().__init__(spec, limits)
        self.root = os.path.realpath(self.path)
        if not os.path.isfile(os.path.join(self.root, "index.json")):
            raise ScanError(f"not an OCI image layout: {self.path} has no index.json")

    def _safe_path(self, name: str) -> str | None:
        parts = name.split("/")
        if name in self.FIXED:
            pass
        elif not (len(parts) == 3 and parts[0] == "blobs" and DIGEST_RE.match(f"{parts[1]}:{parts[2]}")):
            return None
        path = os.path.join(self.root, *parts)
        if os.path.realpath(os.path.dirname(path)) != os.path.dirname(path):
            return None  # a symlinked blobs/ or blobs/<alg> directory
        return path

    def exists(self, name: str) -> bool:
        path = self._safe_path(name)
        return path is not None and os.path.isfile(path) and not os.path.islink(path)

    def locate(self, name: str, what: str) -> BlobLocation:
        path = self._safe_path(name)
        if path is None:
            raise ScanError(f"{what}: {name[:200]!r} is not a blob path (blobs/<alg>/<hex>)")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise ScanError(f"{what}: missing blob {name[:200]}") from None
        except OSError as exc:
            raise ScanError(f"{what}: cannot read {name[:200]}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ScanError(f"{what}: {name[:200]} is not a regular file")
        return BlobLocation(path, 0, st.st_size, name)


def _norm_member(name: str) -> str | None:
    """Normalise an archive member name; None if it climbs out of the archive or is absolute."""
    if name.startswith("/"):
        return None
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(part)
    return "/".join(out)


def open_source(source: str | SourceSpec, limits: Limits) -> Source:
    """Open a source, detecting the format from the content when there is no prefix."""
    spec = source if isinstance(source, SourceSpec) else parse_spec(source)
    if spec.kind == "registry":
        raise ScanError("a registry reference must be pulled first (scan() does it; or pull it with "
                        "scanner.engine.registry.pull())")
    path = spec.path
    if os.path.isdir(path):
        if spec.kind and spec.kind != "oci-layout":
            raise ScanError(f"{spec.kind} expects a file, but {path} is a directory")
        if os.path.isfile(os.path.join(path, "manifest.json")) and not os.path.isfile(
                os.path.join(path, "index.json")):
            raise ScanError(f"{path} looks like an unpacked docker-archive: scan the .tar instead")
        return LayoutSource(spec, limits)
    if not os.path.exists(path):
        raise ScanError(f"no such file or directory: {path}")
    if not os.path.isfile(path):
        raise ScanError(f"not a regular file: {path}")
    if spec.kind == "oci-layout":
        raise ScanError(f"oci: expects a directory, but {path} is a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(BLOCK)
    except OSError as exc:
        raise ScanError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head[:2] == GZIP_MAGIC or head[:4] == ZSTD_MAGIC:
        raise ScanError(f"{path} is a compressed file; decompress it first (docker save | gzip is not an "
                        "image archive until gunzipped)")
    if len(head) < BLOCK or header_checksum_ok(head) is not True:
        raise ScanError(f"not an image archive: {path} is not a tar file")
    return ArchiveSource(spec, limits)


def load_json(data: bytes, what: str) -> object:
    """Parse a JSON document from the image; any failure is one readable ScanError.

    Strings are made safe to print and store: lone surrogates (legal in JSON escapes, not in UTF-8)
    and NULs become visible ``\\uXXXX`` / ``\\x00`` escapes. Digests are computed on the raw bytes.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc).split("\n", 1)[0][:200]
        raise ScanError(f"{what} is not valid JSON: {reason}") from None
    return clean_json(doc)


def clean_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def clean_json(doc: object) -> object:
    """``clean_text`` on every string (keys too), iteratively: documents can nest deeply."""
    if isinstance(doc, str):
        return clean_text(doc)
    if not isinstance(doc, (dict, list)):
        return doc
    root: list[object] = [doc]
    stack: list[tuple[object, object]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        value = container[key]  # type: ignore[index]
        if isinstance(value, str):
            container[key] = clean_text(value)  # type: ignore[index]
        elif isinstance(value, list):
            stack.extend((value, i) for i in range(len(value)))
        elif isinstance(value, dict):
            if not all(k.isascii() and "\x00" not in k for k in value):
                cleaned = {clean_text(k): v for k, v in value.items()}
                value.clear()
                value.update(cleaned)
            stack.extend((value, k) for k in value)
    return root[0]
