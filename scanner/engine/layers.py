"""Scan one layer blob in one pass: digests, decompression, tar walk, one FileEntry per member.

Runs in the scanning process or in a worker process (see :mod:`parallel`); it needs only the blob's
location and the limits, and returns plain data. Bad content never raises: a corrupt stream, a bad
tar header or a bound ends the walk with an issue (turned into a finding by the caller) while the
blob is still read to the end so both digests are known whenever possible.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .compression import (
    CHUNK,
    BlobLocation,
    CorruptStream,
    _RawReader,
    open_blob,
    sniff,
    stream_blob,
    uncompressed_chunks,
)
from .limits import LimitExceeded, Limits
from .model import Change, EntryType, FileEntry, ScanError, Severity
from .rules.content import ContentPlan, LayerContent, LayerInspector
from .tarstream import TarFormatError, TarWalker

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_ISSUES_PER_RULE = 50

_TYPES = {b"0": EntryType.FILE, b"1": EntryType.HARDLINK, b"2": EntryType.SYMLINK, b"3": EntryType.CHAR,
          b"4": EntryType.BLOCK, b"5": EntryType.DIR, b"6": EntryType.FIFO}
_LINKS = frozenset({b"1", b"2"})
_DEVICES = frozenset({b"3", b"4"})
# Issue: (rule_id, severity, title, detail, path, sha256)
Issue = tuple[str, Severity, str, str, str, str]


_ENTRY_FIELDS = ("path", "layer_index", "type", "mode", "uid", "gid", "size", "mtime", "link_target",
                 "sha256", "flags", "change", "visible")
_entry_tuple = operator.attrgetter(*_ENTRY_FIELDS)


def _unpack_entries(blob_digest: str, diff_id: str, compression: str, compressed_size: int,
                    uncompressed_size: int, packed: list[tuple], issues: list[Issue], complete: bool,
                    seconds: float, content: LayerContent | None = None) -> LayerScan:
    return LayerScan(blob_digest, diff_id, compression, compressed_size, uncompressed_size,
                     list(itertools.starmap(FileEntry, packed)), issues, complete, seconds, content)


@dataclass(slots=True)
class LayerScan:
    """What one layer blob holds. Entries carry layer_index 0 until the caller places them."""

    blob_digest: str
    diff_id: str
    compression: str
    compressed_size: int
    uncompressed_size: int
    entries: list[FileEntry] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    complete: bool = True
    seconds: float = 0.0
    content: LayerContent | None = None  # what the content rules saw (None when rules are off)

    def __reduce__(self) -> tuple:
        """Pickle entries as plain tuples (a worker sends tens of thousands): several times cheaper
        than the dataclass default, on both sides."""
        return (_unpack_entries, (self.blob_digest, self.diff_id, self.compression, self.compressed_size,
                                  self.uncompressed_size, list(map(_entry_tuple, self.entries)), self.issues,
                                  self.complete, self.seconds, self.content))


def normalise(name: str) -> tuple[str, tuple[str, ...]]:
    """An archive name as an absolute path inside the image root, plus hostile-name flags."""
    while name.startswith("./"):
        name = name[2:]
    if name and name[0] not in "/." and "//" not in name and "/." not in name:
        return "/" + name.rstrip("/"), ()
    flags: tuple[str, ...] = ("absolute",) if name.startswith("/") else ()
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if "traversal" not in flags:
                flags += ("traversal",)
            if out:
                out.pop()
        else:
            out.append(part)
    return "/" + "/".join(out), flags


def link_escapes(path: str, target: str, hardlink: bool) -> bool:
    """Whether a link target climbs above the image root (lexically, without following links)."""
    if hardlink:
        if target.startswith("/"):
            return True
        depth = 0
    else:
        if ".." not in target:
            return False
        depth = 0 if target.startswith("/") else path.count("/") - 1  # the link's directory depth
    for part in target.split("/"):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            return True
    return False


def _mode_flags(kind: EntryType, mode: int, elf: bool, hidden: bool) -> frozenset[str]:
    flags = set()
    if mode & 0o4000:
        flags.add("setuid")
    if mode & 0o2000:
        flags.add("setgid")
    if mode & 0o1000:
        flags.add("sticky")
    if mode & 0o002 and kind is not EntryType.SYMLINK:
        flags.add("world-writable")
    if kind is EntryType.FILE and mode & 0o111:
        flags.add("executable")
    if elf:
        flags.add("elf")
    if hidden:
        flags.add("hidden")
    return frozenset(flags)


class _Collector:
    """The walker's ``emit``: turns raw members into FileEntry objects and notes hostile ones."""

    def __init__(self, limits: Limits) -> None:
        self.entries: list[FileEntry] = []
        self.issues: list[Issue] = []
        self.seen: dict[str, FileEntry] = {}
        self.max_depth = limits.max_path_depth
        self._flag_cache: dict[tuple, tuple[EntryType, frozenset[str]]] = {}
        self._append = self.entries.append
        self._issue_counts: dict[str, int] = {}
        self.hardlinks: list[tuple[str, str]] = []  # (path, target) of hard links to earlier files

    def issue(self, rule: str, severity: Severity, title: str, detail: str, path: str = "",
              sha256: str = "") -> None:
        count = self._issue_counts.get(rule, 0) + 1
        self._issue_counts[rule] = count
        if count <= MAX_ISSUES_PER_RULE:
            self.issues.append((rule, severity, title, detail, path, sha256))

    def summarise(self) -> None:
        for rule, count in self._issue_counts.items():
            if count > MAX_ISSUES_PER_RULE:
                sev = next(i[1] for i in self.issues if i[0] == rule)
                self.issues.append((rule, sev, f"{count - MAX_ISSUES_PER_RULE} more {rule} entries",
                                    f"only the first {MAX_ISSUES_PER_RULE} of {count} are listed", "", ""))

    def emit(self, name: str, link: str, typeflag: bytes, mode: int, uid: int, gid: int, size: int,
                 mtime: int, sha: str, elf: bool, extra: tuple) -> None:
        if name and name[0] not in "/." and "//" not in name and "/." not in name:
            # a clean relative name (nearly all of them): no dot component, so not hidden nor a whiteout
            path = "/" + (name[:-1] if name[-1] == "/" else name)
            hostile: tuple[str, ...] = ()
            hidden = False
        else:
            path, hostile = normalise(name)
            cut = path.rfind("/") + 1
            if path.startswith(WHITEOUT, cut):
                self._whiteout(path, path[cut:], mode, uid, gid, mtime, hostile)
                return
            hidden = path.startswith(".", cut)
        if len(path) > self.max_depth and path.count("/") > self.max_depth:
            raise LimitExceeded("max_path_depth", f"{path[:200]!r} is nested deeper than {self.max_depth}")
        key = (typeflag, mode, elf, hidden)
        cached = self._flag_cache.get(key)
        if cached is None:
            kind = _TYPES[typeflag]
            cached = self._flag_cache[key] = (kind, _mode_flags(kind, mode, elf, hidden))
        kind, flags = cached
        if typeflag in _LINKS:
            hard = kind is EntryType.HARDLINK
            if link_escapes(path, link, hard):
                hostile += ("link-escape",)
            if hard:
                link = normalise(link)[0]
                target = self.seen.get(link)
                if target is not None and target.type is EntryType.FILE:
                    sha, size = target.sha256, target.size
                    self.hardlinks.append((path, link))
        elif typeflag in _DEVICES:
            hostile += ("device",)
        seen = self.seen
        if path in seen:
            hostile += ("duplicate",)
        if extra:
            hostile += extra
        if hostile:
            flags = flags | frozenset(hostile)
            self._note(path, hostile, link, sha)
        entry = FileEntry(path, 0, kind, mode, uid, gid, size, mtime, link, sha, flags)
        self._append(entry)
        seen[path] = entry

    def _whiteout(self, path: str, base: str, mode: int, uid: int, gid: int, mtime: int,
                  hostile: tuple[str, ...]) -> None:
        parent = path[:path.rfind("/")] or "/"
        if base == OPAQUE:
            flags = frozenset(("opaque", *hostile))
            entry = FileEntry(parent, 0, EntryType.DIR, mode, uid, gid, 0, mtime, "", "", flags,
                              Change.DELETED, False)
        elif base.startswith(WHITEOUT + WHITEOUT) or base == WHITEOUT:
            return  # aufs metadata (.wh..wh.plnk ...) or an empty name: not a deletion
        else:
            target = (parent.rstrip("/") + "/" + base[len(WHITEOUT):])
            flags = frozenset(("whiteout", *hostile))
            entry = FileEntry(target, 0, EntryType.FILE, mode, uid, gid, 0, mtime, "", "", flags,
                              Change.DELETED, False)
        if hostile:
            self._note(entry.path, hostile, "", "")
        self.entries.append(entry)

    def _note(self, path: str, hostile: tuple[str, ...], link: str, sha: str) -> None:
        if "traversal" in hostile or "absolute" in hostile or "link-escape" in hostile:
            what = ", ".join(h for h in hostile if h in ("traversal", "absolute", "link-escape"))
            self.issue("integrity.unsafe-path", Severity.HIGH, f"unsafe tar entry ({what})",
                       f"{path} ({what}{'; link target ' + link if link else ''}): a naive extraction "
                       "would write or point outside the image root", path, sha)
        if "device" in hostile:
            self.issue("integrity.device-node", Severity.MEDIUM, "device node in a layer",
                       f"{path} is a device node", path)
        if "duplicate" in hostile:
            self.issue("integrity.duplicate-entry", Severity.LOW, "the same path twice in one layer",
                       f"{path} appears more than once in the layer; the last one wins", path, sha)


def scan_layer(loc: BlobLocation, limits: Limits, *, algorithm: str = "sha256",
               progress: Callable[[int], None] | None = None,
               content: ContentPlan | None = None, lower: int | None = None) -> LayerScan:
    """Stream one layer blob: both digests, every member as a FileEntry, issues for what went wrong.

    With a ``content`` plan (the rule pack's), each regular file's bytes also go through the content
    rules, in the same pass (see :mod:`scanner.engine.rules.content`)."""
    started = time.monotonic()
    collector = _Collector(limits)
    inspector = LayerInspector(content, limits, lower) if content is not None else None
    walker = TarWalker(collector.emit, limits, inspector=inspector)
    state = {"walking": True}

    def consume(buf: bytearray, n: int) -> None:
        if not state["walking"]:
            return
        try:
            walker.feed(buf, n)
        except LimitExceeded as exc:
            state["walking"] = False
            _limit_issue(collector, exc.bound, exc.detail)
        except TarFormatError as exc:
            state["walking"] = False
            collector.issue("integrity.corrupt-layer", Severity.HIGH, "the layer's tar stream is corrupt",
                            f"{exc}; entries after this point are not listed")

    try:
        result = stream_blob(loc, consume, limits, algorithm=algorithm, progress=progress,
                             deadline=started + limits.max_seconds)
    except OSError as exc:
        raise ScanError(f"cannot read layer {loc.name or loc.path}: {exc.strerror or exc}") from None
    complete = state["walking"] and not result.stop_kind
    if result.stop_kind == "limit":
        _limit_issue(collector, result.stop_bound, result.stop_detail)
    elif result.stop_kind == "corrupt":
        collector.issue("integrity.corrupt-layer", Severity.HIGH, "the layer's compressed stream is corrupt",
                        result.stop_detail)
    if complete:
        try:
            walker.close()
        except TarFormatError as exc:
            complete = False
            collector.issue("integrity.corrupt-layer", Severity.HIGH, "the layer's tar stream is truncated",
                            str(exc))
    if walker.trailing_nonzero:
        collector.issue("integrity.trailing-data", Severity.MEDIUM, "data hidden after the end of the tar",
                        f"{walker.trailing_nonzero} non-zero bytes follow the end-of-archive marker; "
                        "tar readers ignore them")
    collector.summarise()
    layer_content = None
    if inspector is not None:
        for path, target in collector.hardlinks:
            inspector.link(path, target)
        layer_content = inspector.result()
    return LayerScan(result.blob_digest, result.diff_id, result.compression, result.compressed_bytes,
                     result.uncompressed_bytes, collector.entries, collector.issues, complete,
                     time.monotonic() - started, layer_content)


def _limit_issue(collector: _Collector, bound: str, detail: str) -> None:
    collector.issue("integrity.limit-exceeded", Severity.HIGH, f"layer scan stopped at a bound ({bound})",
                    f"{detail}; entries after this point are not listed")


def stream_file(loc: BlobLocation, path: str, limits: Limits) -> Iterator[bytes]:
    """Yield the bytes of the first regular file at ``path`` in the layer (no digests are checked).

    A hard link is followed to its target with a second pass (the target's data came earlier).
    Reading stops as soon as the file is complete.
    """
    wanted = normalise(path)[0]
    for _hop in range(limits.max_link_hops + 1):
        finder = _Finder(wanted)
        yield from _stream_member(loc, finder, limits)
        if finder.kind is None:
            raise ScanError(f"{wanted} is not in this layer")
        if finder.kind is EntryType.FILE:
            return
        if finder.kind is EntryType.HARDLINK:
            wanted = normalise(finder.link)[0]
            continue
        if finder.kind is EntryType.SYMLINK:
            raise ScanError(f"{wanted} is a symbolic link to {finder.link}; give the target's path")
        raise ScanError(f"{wanted} is a {finder.kind}, not a regular file")
    raise ScanError(f"{path}: too many hard-link hops")


class _Finder:
    """Walker hooks that capture one path's data."""

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self.kind: EntryType | None = None
        self.link = ""
        self.done = False
        self.chunks: list[bytes] = []

    def content(self, name: str) -> Callable[[memoryview], None] | None:
        if self.kind is not None or normalise(name)[0] != self.wanted:
            return None
        self.kind = EntryType.FILE
        return lambda piece: self.chunks.append(bytes(piece))

    def emit(self, name: str, link: str, typeflag: bytes, *_rest: object) -> None:
        if normalise(name)[0] == self.wanted:
            if self.kind is None:
                self.kind, self.link = _TYPES[typeflag], link
            self.done = True


def _stream_member(loc: BlobLocation, finder: _Finder, limits: Limits) -> Iterator[bytes]:
    walker = TarWalker(finder.emit, limits, content=finder.content, hash_content=False)
    fd = open_blob(loc)
    try:
        raw = _RawReader(fd, loc, hashlib.sha256(), None)
        kind = sniff(os.pread(fd, 4, loc.offset) if loc.size else b"")
        out = bytearray(CHUNK)
        try:
            for n in uncompressed_chunks(raw, kind, out, limits):
                walker.feed(out, n)
                yield from finder.chunks
                finder.chunks.clear()
                if finder.done:
                    return
            walker.close()
        except (TarFormatError, LimitExceeded, CorruptStream) as exc:
            raise ScanError(f"cannot read the layer: {exc}") from None
    finally:
        os.close(fd)
