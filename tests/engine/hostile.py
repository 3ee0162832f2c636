"""Hand-made tar bytes for hostile and edge-case tests: every field under the test's control."""

from __future__ import annotations

import gzip
import zlib


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def header(name: bytes | str, *, size: int = 0, type: bytes = b"0", mode: int = 0o644, uid: int = 0,
           gid: int = 0, mtime: int = 0, linkname: bytes | str = b"", magic: bytes = b"ustar\x00",
           version: bytes = b"00", prefix: bytes = b"", fields: dict[str, bytes] | None = None,
           checksum: int | None = None, extra: dict[int, bytes] | None = None) -> bytes:
    """One 512-byte header; ``fields`` overrides raw numeric fields (e.g. base-256 uid)."""
    name = name.encode() if isinstance(name, str) else name
    linkname = linkname.encode() if isinstance(linkname, str) else linkname
    raw = {"mode": _octal(mode, 8), "uid": _octal(uid, 8), "gid": _octal(gid, 8),
           "size": _octal(size, 12), "mtime": _octal(mtime, 12)}
    raw.update(fields or {})
    block = bytearray(512)
    block[0:100] = name[:100].ljust(100, b"\x00")
    block[100:108] = raw["mode"]
    block[108:116] = raw["uid"]
    block[116:124] = raw["gid"]
    block[124:136] = raw["size"]
    block[136:148] = raw["mtime"]
    block[156:157] = type
    block[157:257] = linkname[:100].ljust(100, b"\x00")
    block[257:263] = magic
    block[263:265] = version
    block[345:500] = prefix[:155].ljust(155, b"\x00")
    for offset, value in (extra or {}).items():
        block[offset:offset + len(value)] = value
    block[148:156] = b" " * 8
    total = sum(block) if checksum is None else checksum
    block[148:156] = b"%06o\x00 " % total
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 512)


def member(name: bytes | str, data: bytes = b"", **kw: object) -> bytes:
    return header(name, size=len(data), **kw) + pad(data)  # type: ignore[arg-type]


def pax(records: dict[str, str], *, global_: bool = False) -> bytes:
    body = b""
    for key, value in records.items():
        rec = f" {key}={value}\n".encode()
        n = len(rec) + 1
        while len(str(n)) + len(rec) != n:
            n = len(str(n)) + len(rec)
        body += str(n).encode() + rec
    return member("././@PaxHeader", body, type=b"g" if global_ else b"x")


def gnu_long(name: bytes | str, *, link: bool = False) -> bytes:
    name = name.encode() if isinstance(name, str) else name
    return member("././@LongLink", name + b"\x00", type=b"K" if link else b"L", magic=b"ustar ",
                  version=b" \x00")


END = b"\x00" * 1024


def tar(*members: bytes, end: bool = True) -> bytes:
    return b"".join(members) + (END if end else b"")


def gzip_bomb(total: int, member_size: int = 64 << 20) -> bytes:
    """``total`` bytes of zeros as a multi-member gzip: one member compressed once, repeated."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    one = comp.compress(b"\x00" * member_size) + comp.flush()
    count, rest = divmod(total, member_size)
    tail = gzip.compress(b"\x00" * rest, compresslevel=9, mtime=0) if rest else b""
    return one * count + tail
