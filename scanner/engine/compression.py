"""One pass over a blob: hash the compressed bytes, decompress, hash the uncompressed stream, hand it on.

The compression is sniffed from magic bytes (gzip ``1f 8b``, zstd ``28 b5 2f fd``, anything else is
taken as a plain tar), never taken from the media type. gzip uses ISA-L (``isal``), which reads
multi-member streams; zstd uses ``zstandard``'s streaming reader across frames. Output is produced
into one reused 1 MiB buffer, so memory stays constant whatever a bomb expands to; the compression
ratio, total size and time are checked after every chunk.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import zstandard

from .limits import LimitExceeded, Limits

try:  # the C reader: multi-member gzip, readinto() without copies
    from isal.isal_zlib import _GzipReader as _IsalGzipReader
except ImportError:  # pragma: no cover - older isal
    _IsalGzipReader = None
from isal import igzip

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Consumer = Callable[[bytearray, int], None]
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a blob's bytes are: ``size`` bytes at ``offset`` of the regular file ``path``.

    Plain data so it can be sent to a worker process, which opens the file itself.
    """

    path: str
    offset: int
    size: int
    name: str = ""  # the member name in the archive, for messages


@dataclass(slots=True)
class StreamResult:
    blob_digest: str = ""  # "sha256:..." of the compressed bytes ("" never: always fully read)
    diff_id: str = ""  # "sha256:..." of the uncompressed stream; "" if decompression stopped early
    compression: str = "none"  # gzip | zstd | none
    compressed_bytes: int = 0
    uncompressed_bytes: int = 0
    stop_kind: str = ""  # "" | "limit" | "corrupt"
    stop_bound: str = ""  # which Limits field, for "limit"
    stop_detail: str = ""


def sniff(head: bytes) -> str:
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    if head[:4] == ZSTD_MAGIC:
        return "zstd"
    return "none"


def open_blob(loc: BlobLocation) -> int:
    """Open the blob's file read-only, without following a symlink in its last component."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(loc.path, flags)


class _RawReader:
    """Reads exactly the blob's byte range, hashing it and counting progress as it goes."""

    __slots__ = ("fd", "pos", "end", "hasher", "done", "progress")

    def __init__(self, fd: int, loc: BlobLocation, hasher: hashlib._Hash, progress: Progress | None) -> None:
        self.fd = fd
        self.pos = loc.offset
        self.end = loc.offset + loc.size
        self.hasher = hasher
        self.done = 0
        self.progress = progress

    def readinto(self, buf: bytearray | memoryview) -> int:
        want = min(len(buf), self.end - self.pos)
        if want <= 0:
            return 0
        mv = memoryview(buf)
        n = os.preadv(self.fd, [mv[:want]], self.pos)
        if n <= 0:
            raise OSError(f"unexpected end of file at offset {self.pos}")
        self.hasher.update(mv[:n])
        self.pos += n
        self.done += n
        if self.progress is not None:
            self.progress(n)
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.end - self.pos
        buf = bytearray(min(size, self.end - self.pos))
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readable(self) -> bool:
        return True


class CorruptStream(Exception):
    """The compressed stream cannot be decoded (bad data, truncated, garbage after the end)."""


def uncompressed_chunks(raw: _RawReader, kind: str, out: bytearray, limits: Limits,
                        deadline: float | None = None) -> Iterator[int]:
    """Decompress ``raw`` into ``out`` chunk by chunk, yielding each chunk's length; bounds checked."""
    if kind == "gzip":
        reader = (_IsalGzipReader(raw, CHUNK) if _IsalGzipReader is not None
                  else igzip.IGzipFile(fileobj=raw, mode="rb"))  # type: ignore[arg-type]
    elif kind == "zstd":
        dctx = zstandard.ZstdDecompressor(max_window_size=1 << 27)
        reader = dctx.stream_reader(raw, read_size=CHUNK, read_across_frames=True)
    else:
        reader = raw
    total = 0
    while True:
        try:
            n = reader.readinto(out)
        except Exception as exc:  # isal/zstd/EOF/OS errors alike: the stream cannot be read on
            raise CorruptStream(f"{kind} stream is corrupt or truncated: {exc}") from None
        if not n:
            return
        total += n
        if total > limits.max_layer_bytes:
            raise LimitExceeded("max_layer_bytes", f"more than {limits.max_layer_bytes} bytes uncompressed")
        if total > limits.ratio_grace_bytes and total > limits.max_ratio * max(raw.done, 1):
            raise LimitExceeded("max_ratio", f"compression ratio above {limits.max_ratio}:1 "
                                             f"({total} bytes from {raw.done}): a decompression bomb?")
        if deadline is not None and time.monotonic() > deadline:
            raise LimitExceeded("max_seconds", f"the layer took longer than {limits.max_seconds:.0f} s")
        yield n


def stream_blob(loc: BlobLocation, consume: Consumer | None, limits: Limits, *,
                algorithm: str = "sha256", progress: Progress | None = None,
                deadline: float | None = None) -> StreamResult:
    """Read the blob once; feed the uncompressed stream to ``consume(buffer, n)``.

    ``consume`` must not raise for bad content (the layer scanner catches its own errors).
    Decompression errors and bounds end the decompression (recorded in the result), but the rest of
    the compressed blob is still read so its digest is always known.
    """
    result = StreamResult()
    blob_hash = hashlib.new(algorithm)
    fd = open_blob(loc)
    try:
        raw = _RawReader(fd, loc, blob_hash, progress)
        result.compression = kind = sniff(os.pread(fd, 4, loc.offset) if loc.size else b"")
        out = bytearray(CHUNK)
        mv = memoryview(out)
        diff_hash = hashlib.new(algorithm) if kind != "none" else None
        try:
            for n in uncompressed_chunks(raw, kind, out, limits, deadline):
                result.uncompressed_bytes += n
                if diff_hash is not None:
                    diff_hash.update(mv[:n])
                if consume is not None:
                    consume(out, n)
        except LimitExceeded as exc:
            result.stop_kind, result.stop_bound, result.stop_detail = "limit", exc.bound, exc.detail
        except CorruptStream as exc:
            result.stop_kind, result.stop_detail = "corrupt", str(exc)
        # Whatever happened, finish the compressed digest (bounded by the blob's size).
        while raw.readinto(out):
            pass
        result.compressed_bytes = raw.done
        result.blob_digest = f"{algorithm}:{blob_hash.hexdigest()}"
        if not result.stop_kind:  # plain tar: the same bytes, hashed once
            result.diff_id = (f"{algorithm}:{diff_hash.hexdigest()}" if diff_hash is not None
                              else result.blob_digest)
    finally:
        os.close(fd)
    return result
