"""A lean streaming tar reader: 512-byte headers parsed by hand, content hashed in place.

Python's ``tarfile`` costs ~50 µs per member; this walker costs a few. It is push-based: feed it the
uncompressed stream in chunks (any size, any boundaries) and it calls ``emit`` once per real entry,
after the entry's content has been hashed. Supported: ustar (with prefix), GNU long names/links
(``L``/``K``), PAX per-file (``x``) and global (``g``) records (path, linkpath, size, uid, gid, mtime,
GNU sparse keys, xattrs), base-256 numbers, checksum verification, and old GNU sparse headers (``S``,
with extension blocks) which are read correctly and flagged ``sparse`` — the stored bytes are hashed,
the holes are not expanded. Nothing here touches the filesystem.

Names are decoded as UTF-8; bytes that are not valid UTF-8 (and NULs inside PAX values) are kept
visible as ``\\xNN`` escapes, so every name is printable, storable and JSON-safe.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from typing import Protocol

from .limits import LimitExceeded, Limits

BLOCK = 512
# name mode uid gid size mtime chksum type linkname magic version [uname gname devmajor devminor] prefix
HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s64x16x155s12x")
USTAR_MAGIC = b"ustar\x00"
ELF_MAGIC = b"\x7fELF"
_unpack = HEADER.unpack_from
# The same header with numeric fields cut to the digits Go, GNU tar and Python write ("0000644\0",
# "%06o\0 " for the checksum): no terminator to strip on the fast path; anything else takes the slow one.
_unpack_fast = struct.Struct("100s7sx7sx7sx11sx11sx6s2xc100s6s2x80x155s12x").unpack_from
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_sha256 = hashlib.sha256
# Checksum trick: adler32's low half is 1 + sum(bytes) mod 65521, exact for any run of at most 256
# bytes (256 * 255 < 65521), so three C calls sum the header without a per-byte Python loop.
_adler32 = zlib.adler32

# Type flags as emitted (a regular file is always b"0").
FILE, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
_FILE_TYPES = frozenset({b"0", b"\x00", b"7"})
_HEADER_ONLY = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})  # their size field is ignored (as Go does)
_META_TYPES = frozenset({b"x", b"X", b"g", b"L", b"K"})
_SKIPPED_TYPES = frozenset({b"V", b"N", b"M"})  # volume label, old long names, multi-volume: no entry

_HEADER, _DATA, _SKIP, _END, _SPARSE_EXT = range(5)

Emit = Callable[[str, str, bytes, int, int, int, int, int, str, bool, tuple], None]
Sink = Callable[[memoryview], None]


class Inspector(Protocol):
    """Sees regular files' bytes during the walk (the rule pack's content hook)."""

    def whole(self, name: str, mode: int, size: int, data: memoryview) -> None: ...
    def begin(self, name: str, mode: int, size: int) -> bool: ...
    def piece(self, piece: memoryview) -> None: ...
    def end(self) -> None: ...


class TarFormatError(Exception):
    """The tar stream is malformed (bad checksum, bad number, truncated...)."""


def parse_number(field: bytes) -> int:
    """A numeric header field: octal text (NUL/space padded) or GNU base-256."""
    try:
        return int(field.partition(b"\x00")[0], 8)
    except ValueError:
        pass
    if field and field[0] & 0x80:  # base-256: 0x80 positive, 0xff negative (two's complement)
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            value -= 1 << (8 * (len(field) - 1))
        elif field[0] != 0x80:
            raise TarFormatError(f"bad base-256 number {field!r}")
        return value
    if not field.strip(b"\x00 "):
        return 0
    raise TarFormatError(f"bad number field {field[:16]!r}")


def header_checksum_ok(block: bytes | memoryview, off: int = 0) -> bool | None:
    """True/False for a header's checksum, None for an all-zero block (end of archive)."""
    field = bytes(block[off + 148:off + 156])
    total = ((_adler32(block[off:off + 148]) & 0xFFFF) + (_adler32(block[off + 156:off + 356]) & 0xFFFF)
             + (_adler32(block[off + 356:off + 512]) & 0xFFFF) - 3)
    if not total and not field.strip(b"\x00"):
        return None
    total += 256  # the checksum field itself counts as eight spaces
    try:
        stored = int(field.partition(b"\x00")[0], 8)
    except ValueError:
        return False
    if stored == total:
        return True
    # Some old tars summed signed bytes.
    raw = bytes(block[off:off + BLOCK])
    signed = sum(b - 256 if b > 127 else b for b in raw[:148] + b" " * 8 + raw[156:])
    return stored == signed


def parse_pax(data: bytes) -> dict[str, str]:
    """PAX extended header records ``"%d %s=%s\\n"``; strict, since every byte is hostile."""
    out: dict[str, str] = {}
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] == 0:  # NUL padding after the last record
            break
        space = data.find(b" ", pos, pos + 20)
        if space < 0:
            raise TarFormatError("bad PAX record: no length")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("bad PAX record length") from None
        if length <= space - pos + 1 or pos + length > end or data[pos + length - 1] != 0x0A:
            raise TarFormatError("bad PAX record length")
        record = data[space + 1:pos + length - 1]
        key, sep, value = record.partition(b"=")
        if not sep or not key:
            raise TarFormatError("bad PAX record: no key")
        text = value.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
        out[key.decode("utf-8", "backslashreplace")] = text
        pos += length
    return out


def _pax_number(pax: dict[str, str], key: str, default: int) -> int:
    value = pax.get(key)
    if value is None:
        return default
    try:
        number = int(float(value)) if key == "mtime" else int(value)
    except (ValueError, OverflowError):
        raise TarFormatError(f"bad PAX {key} {value[:32]!r}") from None
    if number < 0 and key != "mtime":
        raise TarFormatError(f"negative PAX {key}")
    return number


class TarWalker:
    """Feed uncompressed tar bytes; ``emit(name, linkname, type, mode, uid, gid, size, mtime, sha256,
    elf, extra_flags)`` is called for every entry. ``content(name)`` may return a sink that receives a
    regular file's data instead of it being hashed (used to recover one file's bytes)."""

    def __init__(self, emit: Emit, limits: Limits, content: Callable[[str], Sink | None] | None = None,
                 hash_content: bool = True, inspector: Inspector | None = None) -> None:
        self.emit = emit
        # The content rules' hook: sees each regular file's bytes while they are hashed (issue 4).
        self.inspector = inspector
        self._tap = False
        self.content = content
        self.hash_content = hash_content
        self.max_members = limits.max_members
        self.max_member_size = limits.max_member_size
        self.max_meta = limits.max_meta_bytes
        self.max_path = limits.max_path_length
        self.members = 0  # headers seen, meta headers included
        self.ended = False  # saw the end-of-archive block
        self.trailing_nonzero = 0  # non-zero bytes after the end-of-archive block
        self.offset = 0  # stream offset of the current chunk's start
        self._state = _HEADER
        self._carry = bytearray()
        self._remaining = 0
        self._hasher: hashlib._Hash | None = None
        self._sink: Sink | None = None
        self._collect: bytearray | None = None
        self._head = b""  # first bytes of a file whose data straddles chunks (ELF magic check)
        self._cur: tuple | None = None  # the entry whose data is being read
        self._pad = 0
        self._pax: dict[str, str] | None = None
        self._gpax: dict[str, str] = {}
        self._longname: bytes | None = None
        self._longlink: bytes | None = None
        self._plain = content is None and hash_content  # entries need nothing but hashing
        self._simple = self._plain  # ...and no PAX / long-name record is pending

    # -- feeding ---------------------------------------------------------------------------------
    def feed(self, buf: bytes | bytearray, n: int | None = None) -> None:
        """Consume ``buf[:n]``; the buffer may be reused by the caller afterwards."""
        if n is None:
            n = len(buf)
        mv = memoryview(buf)
        pos = 0
        try:
            while pos < n:
                state = self._state
                if state == _HEADER:
                    if self._carry or n - pos < BLOCK:
                        pos = self._fill_carry(mv, pos, n)
                        if len(self._carry) < BLOCK:
                            break
                        block = bytes(self._carry)
                        self._carry.clear()
                        self._header(block, memoryview(block), 0, BLOCK)
                    else:
                        pos = self._header(buf, mv, pos, n)
                elif state == _DATA:
                    take = min(self._remaining, n - pos)
                    piece = mv[pos:pos + take]
                    if self._hasher is not None:
                        if len(self._head) < 4:
                            self._head += bytes(piece[:4 - len(self._head)])
                        self._hasher.update(piece)
                        if self._tap:
                            self.inspector.piece(piece)  # type: ignore[union-attr]
                    elif self._sink is not None:
                        self._sink(piece)
                    elif self._collect is not None:
                        self._collect += piece
                    pos += take
                    self._remaining -= take
                    if not self._remaining:
                        self._end_data()
                elif state == _SKIP:
                    take = min(self._remaining, n - pos)
                    pos += take
                    self._remaining -= take
                    if not self._remaining:
                        self._state = _HEADER
                elif state == _END:
                    self.trailing_nonzero += (n - pos) - buf.count(b"\x00", pos, n)
                    pos = n
                else:  # _SPARSE_EXT: old GNU sparse extension blocks, each ends with an "extended" flag
                    pos = self._fill_carry(mv, pos, n)
                    if len(self._carry) < BLOCK:
                        break
                    more = self._carry[504]
                    self._carry.clear()
                    if not more:
                        cur = self._cur
                        sink = self.content(cur[0]) if self.content is not None and cur else None
                        self._start_data(self._remaining, sink=sink)
        finally:
            self.offset += n

    def close(self) -> None:
        """The stream ended: complain if it ended inside a member."""
        if self._state == _END or (self._state == _HEADER and not self._carry):
            return
        raise TarFormatError(f"truncated tar: the stream ends inside a member at offset {self.offset}")

    # -- internals --------------------------------------------------------------------------------
    def _fill_carry(self, mv: memoryview, pos: int, n: int) -> int:
        take = min(BLOCK - len(self._carry), n - pos)
        self._carry += mv[pos:pos + take]
        return pos + take

    def _header(self, buf: bytes | bytearray, mv: memoryview, pos: int, n: int) -> int:
        """Parse the header at ``pos``; return where to continue. Small files are finished in place."""
        (name, f_mode, f_uid, f_gid, f_size, f_mtime, chk, typeflag, linkname, magic,
         prefix) = _unpack_fast(mv, pos)
        try:
            if int(chk, 8) != ((_adler32(mv[pos:pos + 148]) & 0xFFFF) + 253
                               + (_adler32(mv[pos + 156:pos + 356]) & 0xFFFF)
                               + (_adler32(mv[pos + 356:pos + 512]) & 0xFFFF)):
                raise ValueError
            size = int(f_size, 8)
            mode = int(f_mode, 8) & 0o7777
            uid = int(f_uid, 8)
            gid = int(f_gid, 8)
            mtime = int(f_mtime, 8)
            if size < 0 or uid < 0 or gid < 0:
                raise ValueError
        except ValueError:  # the slow path: other terminators, base-256, signed checksums, zero blocks
            ok = header_checksum_ok(mv, pos)
            if ok is None:
                self.ended = True
                self._state = _END
                return pos + BLOCK
            if not ok:
                raise TarFormatError(f"bad tar header checksum at offset {self.offset + pos}") from None
            (name, f_mode, f_uid, f_gid, f_size, f_mtime, _chk, typeflag, linkname, magic, _ver,
             prefix) = _unpack(mv, pos)
            size, uid, gid = parse_number(f_size), parse_number(f_uid), parse_number(f_gid)
            mode, mtime = parse_number(f_mode) & 0o7777, parse_number(f_mtime)
            if size < 0 or uid < 0 or gid < 0:
                raise TarFormatError(f"negative number in the header at offset {self.offset + pos}") from None
        self.members += 1
        if self.members > self.max_members:
            raise LimitExceeded("max_members", f"more than {self.max_members} tar members in one layer")
        start = pos + BLOCK
        if typeflag in _META_TYPES:
            if size > self.max_meta:
                raise LimitExceeded("max_meta_bytes", f"a {typeflag.decode()!r} header of {size} bytes")
            self._cur = (typeflag,)
            padded = start + ((size + 511) & ~511)
            if start + size <= n:
                self._meta(typeflag, bytes(mv[start:start + size]))
                return self._skip_to(padded, n)
            self._collect = bytearray()
            self._start_data(size, pad=((size + 511) & ~511) - size)
            return start

        name = name.partition(b"\x00")[0]
        if magic == USTAR_MAGIC and prefix[0]:
            name = prefix.partition(b"\x00")[0] + b"/" + name
        if typeflag == b"0" and self._simple:  # the common case: a plain file, no pending records
            end = start + size
            if end <= n and len(name) <= self.max_path and size <= self.max_member_size:
                sname = name.decode("utf-8", "backslashreplace")
                if self.inspector is not None:
                    self.inspector.whole(sname, mode, size, mv[start:end])
                self.emit(sname, "", FILE, mode, uid, gid, size, mtime,
                          _sha256(mv[start:end]).hexdigest() if size else EMPTY_SHA256,
                          size >= 4 and buf.startswith(ELF_MAGIC, start), ())
                end = start + ((size + 511) & ~511)
                if end <= n:
                    return end
                self._state = _SKIP
                self._remaining = end - n
                return n
        if self._longname is not None:
            name, self._longname = self._longname, None
        linkname = linkname.partition(b"\x00")[0]
        if self._longlink is not None:
            linkname, self._longlink = self._longlink, None
        extra: tuple = ()
        if typeflag == b"S":
            extra = ("sparse",)
            typeflag = FILE
        elif typeflag in _FILE_TYPES:
            # V7 tar marks directories by a trailing slash
            typeflag = DIR if typeflag == b"\x00" and name.endswith(b"/") else FILE
        elif typeflag == b"D":
            typeflag = DIR
        pax = self._pax
        if self._gpax:
            pax = {**self._gpax, **pax} if pax else self._gpax
        self._pax = None
        self._simple = self._plain and not self._gpax
        sname = name.decode("utf-8", "backslashreplace")
        slink = linkname.decode("utf-8", "backslashreplace")
        if pax:
            sname = pax.get("GNU.sparse.name", pax.get("path", sname))
            slink = pax.get("linkpath", slink)
            size = _pax_number(pax, "size", size)
            uid = _pax_number(pax, "uid", uid)
            gid = _pax_number(pax, "gid", gid)
            mtime = _pax_number(pax, "mtime", mtime)
            extra = extra + _pax_flags(pax)
        if len(sname) > self.max_path or len(slink) > self.max_path:
            raise LimitExceeded("max_path_length",
                                f"a name longer than {self.max_path} at offset {self.offset + pos}")
        if typeflag in _HEADER_ONLY:
            self.emit(sname, slink, typeflag, mode, uid, gid, 0, mtime, "", False, extra)
            return start
        if size > self.max_member_size:
            raise LimitExceeded("max_member_size", f"{sname!r} is {size} bytes")
        padded = (size + 511) & ~511
        if typeflag != FILE:
            if typeflag in _SKIPPED_TYPES:
                return self._skip_to(start + padded, n)
            if typeflag != DIR:
                extra = (*extra, "unknown-type")
                typeflag = FILE  # POSIX: unknown types are read as regular files
        if typeflag == DIR:  # GNU dumpdir: data is a listing, not content
            self.emit(sname, slink, DIR, mode, uid, gid, 0, mtime, "", False, extra)
            return self._skip_to(start + padded, n)
        self._cur = (sname, slink, FILE, mode, uid, gid, size, mtime, extra)
        if extra and extra[0] == "sparse" and prefix[482 - 345]:
            self._state = _SPARSE_EXT  # extension blocks of the sparse map come before the data
            self._remaining = size
            return start
        sink = self.content(sname) if self.content is not None else None
        if sink is None and start + size <= n:  # fast path: the whole file is in this chunk
            if not self.hash_content:
                digest = ""
            elif size:
                digest = hashlib.sha256(mv[start:start + size]).hexdigest()
            else:
                digest = EMPTY_SHA256
            elf = size >= 4 and buf.startswith(ELF_MAGIC, start)
            self._cur = None
            if self.inspector is not None and self.hash_content:
                self.inspector.whole(sname, mode, size, mv[start:start + size])
            self.emit(sname, slink, FILE, mode, uid, gid, size, mtime, digest, elf, extra)
            return self._skip_to(start + padded, n)
        self._start_data(size, sink=sink)
        return start

    def _skip_to(self, target: int, n: int) -> int:
        if target <= n:
            self._state = _HEADER
            return target
        self._state = _SKIP
        self._remaining = target - n
        return n

    def _start_data(self, size: int, pad: int | None = None, sink: Sink | None = None) -> None:
        cur = self._cur
        if cur is not None and len(cur) > 1:  # a regular file
            self._sink = sink
            if sink is None and self.hash_content:
                self._hasher = hashlib.sha256()
                if self.inspector is not None:
                    self._tap = self.inspector.begin(cur[0], cur[3], size)
            self._head = b""
            pad = ((size + 511) & ~511) - size
        self._pad = pad or 0
        self._remaining = size
        if size:
            self._state = _DATA
        else:
            self._end_data()

    def _end_data(self) -> None:
        cur = self._cur
        self._cur = None
        if cur is not None and len(cur) == 1:
            data = bytes(self._collect or b"")
            self._collect = None
            self._meta(cur[0], data)
        elif cur is not None:
            sname, slink, typeflag, mode, uid, gid, size, mtime, extra = cur
            hasher, self._hasher, self._sink = self._hasher, None, None
            digest = hasher.hexdigest() if hasher is not None else ""
            if self._tap:
                self._tap = False
                self.inspector.end()  # type: ignore[union-attr]
            elf = self._head[:4] == ELF_MAGIC
            self.emit(sname, slink, typeflag, mode, uid, gid, size, mtime, digest, elf, extra)
        if self._pad:
            self._state = _SKIP
            self._remaining = self._pad
        else:
            self._state = _HEADER

    def _meta(self, typeflag: bytes, data: bytes) -> None:
        self._simple = False  # a record applies to the next entry: take the general path for it
        if typeflag in (b"x", b"X"):
            pax = parse_pax(data)
            self._pax = {**self._pax, **pax} if self._pax else pax
        elif typeflag == b"g":
            self._gpax.update(parse_pax(data))
        elif typeflag == b"L":
            self._longname = data.partition(b"\x00")[0]
        else:  # b"K"
            self._longlink = data.partition(b"\x00")[0]


def _pax_flags(pax: dict[str, str]) -> tuple[str, ...]:
    flags: list[str] = []
    for key in pax:
        if key.startswith("GNU.sparse."):
            if "sparse" not in flags:
                flags.append("sparse")
        elif key.endswith("xattr.security.capability"):
            flags.append("capabilities")
    return tuple(flags)


def iter_headers(read_at: Callable[[int, int], bytes], file_size: int, limits: Limits,
                 max_members: int) -> tuple[list[tuple[str, str, bytes, int, int]], bool]:
    """Index an uncompressed tar by seeking: ``[(name, linkname, type, data_offset, size), ...]`` and
    whether the end-of-archive marker was there.

    Used for the outer image archive, whose members are blobs read later by offset; only headers and
    PAX / long-name data are read.
    """
    out: list[tuple[str, str, bytes, int, int]] = []
    pos = 0

    def add(name: str, link: str, typeflag: bytes, size: int) -> None:
        out.append((name, link, typeflag, pos, size))
        if len(out) > max_members:
            raise LimitExceeded("max_archive_members", f"more than {max_members} members in the archive")

    def emit(name: str, link: str, typeflag: bytes, mode: int, uid: int, gid: int, size: int,
             mtime: int, digest: str, elf: bool, extra: tuple) -> None:
        add(name, link, typeflag, size)

    walker = TarWalker(emit, limits, hash_content=False)
    while True:
        if pos > file_size:
            raise TarFormatError(f"truncated archive: it ends inside a member ({file_size} bytes)")
        block = read_at(pos, BLOCK)
        if len(block) < BLOCK:
            if not block:
                break  # no end-of-archive marker: tolerated (the caller is told by walker.ended)
            raise TarFormatError(f"truncated archive at offset {pos} (the file is {file_size} bytes)")
        walker.offset = pos
        walker._header(block, memoryview(block), 0, BLOCK)
        pos += BLOCK
        state = walker._state
        if state == _END:
            break
        if state == _SKIP:  # data we do not index (GNU dumpdir, volume label)
            pos += walker._remaining
        elif state == _DATA and walker._cur is not None and len(walker._cur) > 1:
            name, link, typeflag, _mode, _uid, _gid, size = walker._cur[:7]
            if pos + size > file_size:
                raise TarFormatError(f"truncated archive: {name!r} extends past the end of the file")
            add(name, link, typeflag, size)
            pos += (size + 511) & ~511
        elif state == _DATA:  # PAX or long-name data: read it through the walker
            data = read_at(pos, walker._remaining)
            if len(data) < walker._remaining:
                raise TarFormatError(f"truncated archive at offset {pos}")
            walker.feed(data)
            pos += len(data)
            if walker._state == _SKIP:
                pos += walker._remaining
        elif state == _SPARSE_EXT:
            raise TarFormatError("a sparse member in the image archive is not supported")
        walker._state = _HEADER
        walker._cur = walker._hasher = walker._sink = walker._collect = None
        walker._remaining = 0
    return out, walker.ended
