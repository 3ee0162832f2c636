"""The lean tar walker against tarfile-written archives and hand-made headers, at any chunk size."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile

import pytest

from scanner.engine.limits import LimitExceeded, Limits
from scanner.engine.tarstream import TarFormatError, TarWalker, parse_number, parse_pax
from tests.engine import hostile as h

Member = tuple  # (name, link, type, mode, uid, gid, size, mtime, sha256, elf, extra)


def walk(data: bytes, chunk: int | None = None,
         limits: Limits | None = None) -> tuple[list[Member], TarWalker]:
    out: list[Member] = []
    walker = TarWalker(lambda *m: out.append(m), limits or Limits())
    step = chunk or len(data) or 1
    buf = bytearray(step)
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        buf[:len(piece)] = piece  # a reused buffer, as the engine feeds it
        walker.feed(buf, len(piece))
    walker.close()
    return out, walker


def _tarfile_bytes(fmt: int, members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _info(name: str, data: bytes = b"", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data


LONG = "usr/share/" + "/".join(f"directory-{i:03d}" for i in range(30)) + "/file-with-a-long-name.txt"
CASES = [
    _info("etc/passwd", b"root:x:0:0\n", mode=0o644, mtime=1_700_000_000),
    _info("bin/", type=tarfile.DIRTYPE, mode=0o755),
    _info(LONG, b"long name" * 100, uid=1000, gid=1000),
    _info("link-with-long-target", type=tarfile.SYMTYPE, linkname="../" * 60 + "target"),
    _info("bin/hard", type=tarfile.LNKTYPE, linkname="etc/passwd"),
    _info("usr/bin/elf", b"\x7fELF" + bytes(range(256)) * 40, mode=0o4755),
    _info("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
    _info("empty", b""),
    _info("unicodé/名前.txt", b"utf-8 names"),
]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [None, 512, 513, 1000, 4096, 7])
def test_matches_tarfile(fmt: int, chunk: int | None) -> None:
    data = _tarfile_bytes(fmt, CASES)
    members, walker = walk(data, chunk)
    assert walker.ended
    assert [m[0] for m in members] == [info.name for info, _ in CASES]
    for m, (info, content) in zip(members, CASES, strict=True):
        name, link, typeflag, mode, uid, gid, size, mtime, sha, elf, extra = m
        assert (mode, uid, gid, mtime) == (info.mode, info.uid, info.gid, info.mtime)
        assert link == info.linkname
        if info.isreg():
            assert typeflag == b"0" and size == len(content)
            assert sha == hashlib.sha256(content).hexdigest()
            assert elf == content.startswith(b"\x7fELF")
        else:
            assert sha == "" and size == 0


@pytest.mark.parametrize("chunk", [None, 512, 700, 4096])
def test_ustar_prefix_field(chunk: int | None) -> None:
    name = "a" * 120 + "/" + "b" * 90
    big = bytes(range(256)) * 40  # spans chunks: the entry finishes on the slow path
    data = _tarfile_bytes(tarfile.USTAR_FORMAT, [_info(name, b"x"), _info(name + "2", big)])
    members = walk(data, chunk)[0]
    assert [m[0] for m in members] == [name, name + "2"]
    assert members[1][8] == hashlib.sha256(big).hexdigest()


def test_gnu_base256_numbers_and_big_uid() -> None:
    data = _tarfile_bytes(tarfile.GNU_FORMAT, [_info("big", b"x", uid=10**10, gid=2**40, mtime=2**40)])
    [(_, _, _, _, uid, gid, _, mtime, *_)] = walk(data)[0]
    assert (uid, gid, mtime) == (10**10, 2**40, 2**40)
    assert parse_number(b"\x80" + (5).to_bytes(11, "big")) == 5
    assert parse_number(b"\xff" * 12) == -1
    assert parse_number(b"0000644 \x00") == 0o644
    assert parse_number(b"\x00" * 8) == 0
    with pytest.raises(TarFormatError):
        parse_number(b"12x4\x00\x00\x00\x00")


def test_pax_records_and_global_header() -> None:
    data = h.tar(
        h.pax({"uid": "4242"}, global_=True),
        h.pax({"path": "pax/path/" + "x" * 200, "linkpath": "t" * 150, "size": "3", "mtime": "1700000000.5",
               "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}),
        h.header("ignored", type=b"2"),  # a link: the PAX size does not give it data
        h.member("second", b"xyz"),
    )
    (n1, l1, t1, _, u1, _, _, m1, _, _, e1), (n2, _, _, _, u2, _, s2, _, sha2, _, _) = walk(data)[0]
    assert n1 == "pax/path/" + "x" * 200 and l1 == "t" * 150 and t1 == b"2" and m1 == 1700000000
    assert "capabilities" in e1 and u1 == 4242
    assert n2 == "second" and u2 == 4242 and s2 == 3 and sha2 == hashlib.sha256(b"xyz").hexdigest()


def test_pax_size_overrides_header_size() -> None:
    data = h.tar(h.pax({"size": "5"}), h.header("f", size=0) + h.pad(b"hello"), h.member("g", b"1"))
    members = walk(data)[0]
    assert [(m[0], m[6]) for m in members] == [("f", 5), ("g", 1)]


def test_gnu_long_name_and_link_records() -> None:
    data = h.tar(h.gnu_long("n" * 300), h.gnu_long("l" * 300, link=True),
                 h.member("short", type=b"2", linkname="short-link"))
    [(name, link, typeflag, *_)] = walk(data)[0]
    assert name == "n" * 300 and link == "l" * 300 and typeflag == b"2"


def test_bad_checksum_and_signed_checksum() -> None:
    good = h.member("f", b"data")
    bad = bytearray(good)
    bad[0] ^= 1  # name changed, checksum not
    with pytest.raises(TarFormatError, match="checksum"):
        walk(h.tar(bytes(bad)))
    high = h.header("é".encode("latin-1") * 3, size=0)  # bytes > 127
    signed_sum = sum(b - 256 if b > 127 else b for b in high[:148] + b" " * 8 + high[156:])
    signed = h.header("é".encode("latin-1") * 3, checksum=signed_sum)
    assert walk(h.tar(signed))[0][0][0] == "\\xe9" * 3  # not UTF-8: kept visible as escapes


def test_truncation_is_an_error_but_missing_end_marker_is_not() -> None:
    data = h.tar(h.member("a", b"x" * 2000), end=False)
    with pytest.raises(TarFormatError, match="truncated"):
        walk(data[:1500])
    members, walker = walk(data)
    assert [m[0] for m in members] == ["a"] and not walker.ended
    with pytest.raises(TarFormatError, match="truncated"):
        walk(data[:100])


def test_trailing_data_after_end_of_archive_is_counted() -> None:
    data = h.tar(h.member("a", b"x")) + h.member("hidden", b"secret")
    members, walker = walk(data, chunk=700)
    assert [m[0] for m in members] == ["a"] and walker.trailing_nonzero > 0
    assert walk(h.tar(h.member("a")) + b"\x00" * 9000)[1].trailing_nonzero == 0


def test_old_gnu_sparse_with_extension_blocks() -> None:
    ext = bytearray(512)
    ext[504] = 1  # another extension block follows
    ext2 = bytearray(512)
    data = h.tar(
        h.header("sparse", size=4, type=b"S", magic=b"ustar ", version=b" \x00", extra={482: b"\x01"})
        + bytes(ext) + bytes(ext2) + h.pad(b"DATA"),
        h.member("after", b"ok"),
    )
    for chunk in (None, 100, 512):
        (s_name, _, s_type, *_rest), (a_name, *_) = walk(data, chunk)[0]
        assert (s_name, s_type, a_name) == ("sparse", b"0", "after")
        assert "sparse" in _rest[-1] and _rest[-3] == hashlib.sha256(b"DATA").hexdigest()


def test_pax_sparse_is_flagged() -> None:
    data = h.tar(h.pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "real/name",
                        "GNU.sparse.realsize": "100"}), h.member("GNUSparseFile.0/name", b"map+data"))
    [m] = walk(data)[0]
    assert m[0] == "real/name" and "sparse" in m[-1]


def test_v7_directory_and_unknown_types() -> None:
    data = h.tar(h.member("olddir/", type=b"\x00", magic=b"\x00" * 6, version=b"\x00\x00"),
                 h.member("weird", b"abc", type=b"Z"), h.member("label", b"vol", type=b"V"))
    members = walk(data)[0]
    assert [(m[0], m[2]) for m in members] == [("olddir/", b"5"), ("weird", b"0")]
    assert "unknown-type" in members[1][-1]


def test_header_only_types_ignore_their_size() -> None:
    # Go and tarfile ignore the size of links, dirs and devices: a lying size must not desync us.
    data = h.tar(h.header("d/", size=5000, type=b"5"), h.member("f", b"x"))
    assert [m[0] for m in walk(data)[0]] == ["d/", "f"]


def test_limits() -> None:
    many = h.tar(*(h.member(f"f{i}") for i in range(20)))
    with pytest.raises(LimitExceeded, match="max_members"):
        walk(many, limits=Limits(max_members=10))
    with pytest.raises(LimitExceeded, match="max_member_size"):
        walk(h.tar(h.member("f", b"x" * 100)), limits=Limits(max_member_size=50))
    with pytest.raises(LimitExceeded, match="max_meta_bytes"):
        walk(h.tar(h.gnu_long("x" * 5000)), limits=Limits(max_meta_bytes=1024))
    with pytest.raises(LimitExceeded, match="max_path_length"):
        walk(h.tar(h.gnu_long("x" * 600), h.member("f")), limits=Limits(max_path_length=500))


def test_parse_pax_rejects_bad_records() -> None:
    assert parse_pax(b"11 path=ab\n") == {"path": "ab"}
    for bad in (b"99 path=x\n", b"x path=y\n", b"9 pathy\n", b"5 a=b\n", b"11 path=abX"):
        with pytest.raises(TarFormatError):
            parse_pax(bad)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT])
def test_random_chunking_equivalence(fmt: int) -> None:
    rng = random.Random(7)
    members = [_info(f"{'long-directory-name/' * (i % 9)}d{i % 7}/f{i}", rng.randbytes(rng.randint(0, 3000)))
               for i in range(200)]
    data = _tarfile_bytes(fmt, members)
    whole = walk(data)[0]
    for _ in range(5):
        out: list[Member] = []
        walker = TarWalker(lambda *m, _out=out: _out.append(m), Limits())
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 5000)
            walker.feed(data[pos:pos + step])
            pos += step
        walker.close()
        assert out == whole
    assert [m[0] for m in whole] == [info.name for info, _ in members]
