"""A hostile corpus: every byte is attacker-controlled. Flags and findings, or one ScanError line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from scanner.engine import Limits, ScanError, ScanOptions, open_layer_file, scan
from scanner.engine.model import EntryType, Severity
from tests.engine import hostile as h
from tests.imagefactory import RawBlob, build_image, layer_tar, write_archive

REPO = Path(__file__).resolve().parents[2]


def _one_line(exc: pytest.ExceptionInfo[ScanError]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def test_hostile_member_names_are_flagged_not_followed(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    layer = h.tar(
        h.member("../../etc/evil", b"escape"),
        h.member("a/../../../b", b"escape2"),
        h.member("/etc/shadow", b"absolute"),
        h.member("usr/lib/link", type=b"2", linkname="../../../../etc/passwd"),
        h.member("usr/lib/ok-link", type=b"2", linkname="../../bin/sh"),
        h.member("usr/lib/abs-link", type=b"2", linkname="/etc/passwd"),
        h.member("hard", type=b"1", linkname="../../etc/passwd"),
        h.member("hard-abs", type=b"1", linkname="/etc/passwd"),
        h.member("dev/sda", type=b"4"),
        h.member("dev/mem", type=b"3"),
        h.member("dup", b"one"),
        h.member("dup", b"two"),
        h.member("fifo", type=b"6"),
    )
    built = build_image(tmp_path / "img.tar", [layer], fmt="oci-archive")
    [image] = scan(str(built.path)).images
    assert os.listdir(work) == []  # nothing was written anywhere by name
    assert not (tmp_path / "etc").exists()
    flags = {(f.path, f.type): set(f.flags) for f in image.files}
    assert flags[("/etc/evil", EntryType.FILE)] == {"traversal"}
    assert flags[("/b", EntryType.FILE)] == {"traversal"}
    assert flags[("/etc/shadow", EntryType.FILE)] == {"absolute"}
    assert "link-escape" in flags[("/usr/lib/link", EntryType.SYMLINK)]
    assert "link-escape" not in flags[("/usr/lib/ok-link", EntryType.SYMLINK)]
    assert "link-escape" not in flags[("/usr/lib/abs-link", EntryType.SYMLINK)]  # rooted in the image
    assert "link-escape" in flags[("/hard", EntryType.HARDLINK)]
    assert "link-escape" in flags[("/hard-abs", EntryType.HARDLINK)]
    assert "device" in flags[("/dev/sda", EntryType.BLOCK)]
    assert "device" in flags[("/dev/mem", EntryType.CHAR)]
    assert "device" not in flags[("/fifo", EntryType.FIFO)]
    dups = [f for f in image.files if f.path == "/dup"]
    assert ["duplicate" in f.flags for f in dups] == [False, True] and dups[1].visible
    rules = {}
    for f in image.findings:
        rules.setdefault(f.rule_id, []).append(f)
    assert len(rules["integrity.unsafe-path"]) == 6
    assert rules["integrity.unsafe-path"][0].severity is Severity.HIGH
    assert len(rules["integrity.device-node"]) == 2 and len(rules["integrity.duplicate-entry"]) == 1


def test_many_hostile_entries_are_summarised(tmp_path: Path) -> None:
    layer = h.tar(*(h.member(f"../x{i}") for i in range(80)))
    built = build_image(tmp_path / "img", [layer], fmt="oci")
    [image] = scan(str(built.path)).images
    unsafe = [f for f in image.findings if f.rule_id == "integrity.unsafe-path"]
    assert len(unsafe) == 51 and unsafe[-1].title.endswith("30 more integrity.unsafe-path entries")
    assert len(image.files) == 80


# -- the outer archive and its documents ------------------------------------------------------------

def _docker(tmp_path: Path, manifest: object, extra: list | None = None) -> Path:
    members = [("manifest.json", manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode())]
    return write_archive(tmp_path / "bad.tar", members + (extra or []))


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})


@pytest.mark.parametrize("manifest,extra,message", [
    (b"{not json", [], "manifest.json is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, [], "not valid JSON"),
    ({"Config": "c.json"}, [], "not a non-empty list"),
    ([{"Config": "c.json", "Layers": ["../../etc/passwd"]}], [("c.json", CONFIG.encode())],
     "points outside the archive"),
    ([{"Config": "c.json", "Layers": ["/etc/passwd"]}], [("c.json", CONFIG.encode())], "outside the archive"),
    ([{"Config": "c.json", "Layers": ["missing/layer.tar"]}], [("c.json", CONFIG.encode())],
     "missing from the archive"),
    ([{"Config": "../c.json", "Layers": []}], [], "outside the archive"),
    ([{"Config": "c.json", "Layers": [5]}], [("c.json", CONFIG.encode())], "not a path"),
    ([{"Config": "c.json", "Layers": "x"}], [("c.json", CONFIG.encode())], "not a list"),
    ([{"Config": "c.json", "Layers": []}], [("c.json", b"[1, 2]")], "not a JSON object"),
    ([{"Config": "c.json", "Layers": ["l.tar"]}], [("c.json", CONFIG.encode()), ("l.tar", "l.tar")],
     "chain of more than"),
    ([{"Config": "c.json", "Layers": ["l.tar"]}], [("c.json", CONFIG.encode()), ("l.tar", "/etc/passwd")],
     "links outside the archive"),
    ([{"Config": "c.json", "Layers": ["d"]}], [("c.json", CONFIG.encode()), ("d", None)], "is a directory"),
])
def test_bad_docker_archives(tmp_path: Path, manifest: object, extra: list, message: str) -> None:
    with pytest.raises(ScanError) as exc:
        scan(str(_docker(tmp_path, manifest, extra)))
    assert message in _one_line(exc)


def _oci_dir(tmp_path: Path) -> Path:
    return build_image(tmp_path / "oci", [[("/f", b"x")]], fmt="oci").path


def test_bad_oci_layouts(tmp_path: Path) -> None:
    layout = _oci_dir(tmp_path)
    desc = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    cases = [
        ({"manifests": [{**desc, "digest": "sha256:../../../etc/passwd"}]}, "invalid digest"),
        ({"manifests": [{**desc, "digest": "sha256:" + "ab" * 32}]}, "missing blob"),
        ({"manifests": [{**desc, "digest": "md5:" + "ab" * 16}]}, "invalid digest"),
        ({"manifests": "nope"}, "not a list"),
        ({"manifests": [{**desc, "size": "big"}]}, "size is not"),
        ([], "not a JSON object"),
    ]
    original = (layout / "index.json").read_bytes()
    for doc, message in cases:
        (layout / "index.json").write_text(json.dumps(doc))
        with pytest.raises(ScanError) as exc:
            scan(str(layout))
        assert message in _one_line(exc), doc
    (layout / "index.json").write_bytes(original)
    assert scan(str(layout)).images


def test_symlinked_blob_in_a_layout_is_refused(tmp_path: Path) -> None:
    layout = _oci_dir(tmp_path)
    blobs = layout / "blobs/sha256"
    manifest = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"].split(":")[1]
    secret = tmp_path / "secret.json"
    secret.write_bytes((blobs / manifest).read_bytes())
    (blobs / manifest).unlink()
    (blobs / manifest).symlink_to(secret)
    with pytest.raises(ScanError, match="not a regular file"):
        scan(str(layout))


def test_json_document_bound(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", [[("/f", b"x")]], fmt="oci-archive",
                        config={"Env": ["PAD=" + "x" * 300_000]})
    with pytest.raises(ScanError, match="over the 100000-byte bound"):
        scan(str(built.path), options=ScanOptions(limits=Limits(max_json_bytes=100_000)))


def test_layer_count_bound(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", [[("/f", b"x")]] * 5, fmt="oci-archive")
    with pytest.raises(ScanError, match="5 layers, over the bound of 4"):
        scan(str(built.path), options=ScanOptions(limits=Limits(max_layers=4)))


def test_not_an_image(tmp_path: Path) -> None:
    cases = {
        "empty": b"",
        "random": os.urandom(4096),
        "text.json": b'{"hello": "world"}',
        "gzipped.tar.gz": b"\x1f\x8b\x08\x00" + b"\x00" * 600,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    plain = write_archive(tmp_path / "plain.tar", [("README", b"hi")])
    for path in [*(tmp_path / n for n in cases), plain, tmp_path / "nope.tar", tmp_path]:
        with pytest.raises(ScanError) as exc:
            scan(str(path))
        assert _one_line(exc)
    with pytest.raises(ScanError, match="decompress it first"):
        scan(str(tmp_path / "gzipped.tar.gz"))


def test_truncated_archive(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", [[("/big", os.urandom(200_000))]], fmt="oci-archive",
                        compression="none")
    data = built.path.read_bytes()
    with tarfile.open(built.path) as tar:
        layer = next(m for m in tar.getmembers() if m.size > 100_000)
        index = tar.getmember("index.json")
    for cut in (layer.offset_data + 1000, 700, index.offset_data + 5, index.offset):
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        with pytest.raises(ScanError) as exc:
            scan(str(tmp_path / "cut.tar"))
        assert "truncated" in _one_line(exc)


def test_member_bound_ends_the_layer_with_a_finding(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", [[(f"/f{i}", b"") for i in range(30)], [("/next", b"ok")]],
                        fmt="oci")
    [image] = scan(str(built.path), options=ScanOptions(limits=Limits(max_members=10))).images
    [finding] = [f for f in image.findings if f.rule_id.startswith("integrity.")]
    assert finding.rule_id == "integrity.limit-exceeded" and finding.severity is Severity.HIGH
    assert "max_members" in finding.title and finding.layer_index == 0
    assert len([f for f in image.files if f.layer_index == 0]) == 10
    assert not image.layers[0].complete and image.layers[0].actual_diff_id == built.diff_ids[0]
    assert image.layers[1].complete and [f.path for f in image.files][-1] == "/next"


def test_path_depth_bound(tmp_path: Path) -> None:
    deep = "/" + "/".join(["d"] * 40) + "/f"
    built = build_image(tmp_path / "img", [[(deep, b"x")]], fmt="oci")
    [image] = scan(str(built.path), options=ScanOptions(limits=Limits(max_path_depth=32))).images
    integrity = [f for f in image.findings if f.rule_id.startswith("integrity.")]
    assert [f.rule_id for f in integrity] == ["integrity.limit-exceeded"]
    assert "max_path_depth" in integrity[0].title


def test_zstd_bomb_is_stopped_by_the_ratio_bound(tmp_path: Path) -> None:
    blob = zstandard.ZstdCompressor(level=3).compress(layer_tar([("/zeros", b"\x00" * (96 << 20))]))
    built = build_image(tmp_path / "img", [RawBlob(blob)], fmt="oci")
    [image] = scan(str(built.path), options=ScanOptions(limits=Limits(ratio_grace_bytes=8 << 20))).images
    integrity = [f for f in image.findings if f.rule_id.startswith("integrity.")]
    assert [f.rule_id for f in integrity] == ["integrity.limit-exceeded"]
    assert "max_ratio" in integrity[0].title
    assert image.layers[0].actual_digest == image.layers[0].digest  # the blob digest is still checked


def test_total_size_bound(tmp_path: Path) -> None:
    blob = h.gzip_bomb(64 << 20, member_size=8 << 20)
    built = build_image(tmp_path / "img", [RawBlob(blob)], fmt="oci")
    limits = Limits(max_ratio=10**9, max_layer_bytes=16 << 20)
    [image] = scan(str(built.path), options=ScanOptions(limits=limits)).images
    assert "max_layer_bytes" in image.findings[0].title
    assert image.layers[0].uncompressed_size <= (16 << 20) + (1 << 20)


BOMB_SCRIPT = """
import json, sys, time
from scanner.engine import scan
t = time.monotonic()
report = scan(sys.argv[1])
image = report.images[0]
print(json.dumps({"seconds": time.monotonic() - t,
                  # VmHWM: this process's own peak (ru_maxrss would include the forking parent's)
                  "maxrss_kib": int(next(line.split()[1] for line in open("/proc/self/status")
                                         if line.startswith("VmHWM"))),
                  "rules": [f.rule_id for f in image.findings if f.rule_id.startswith("integrity.")],
                  "titles": [f.title for f in image.findings if f.rule_id.startswith("integrity.")],
                  "blob_ok": image.layers[0].actual_digest == image.layers[0].digest,
                  "out": image.layers[0].uncompressed_size}))
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_gzip_bomb_finishes_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """≈10 GiB of zeros in ≈10 MB of multi-member gzip, scanned with the default limits."""
    blob = h.gzip_bomb(10 << 30)
    assert 8e6 < len(blob) < 12e6
    built = build_image(tmp_path / "bomb.tar", [RawBlob(blob), [("/after", b"still scanned")]],
                        fmt="oci-archive")
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(built.path)], capture_output=True,
                         text=True, cwd=REPO, timeout=110, check=True)
    result = json.loads(run.stdout)
    assert time.monotonic() - started < 30, result
    assert result["rules"] == ["integrity.limit-exceeded"] and "max_ratio" in result["titles"][0]
    assert result["blob_ok"] and result["out"] < (1 << 30)
    assert result["maxrss_kib"] < 150 * 1024, result


def test_undecodable_names_and_strings_stay_printable_and_storable(tmp_path: Path) -> None:
    layer = h.tar(h.member(b"bin/\xff\xfe-evil", b"x"), h.pax({"path": "nul\x00name"}), h.member("p", b"y"))
    history = [{"created_by": "sh -c \udcff lone surrogate \x00 nul"}]
    built = build_image(tmp_path / "img", [layer], fmt="oci", history=history,
                        config={"User": "\ud800", "Labels": {"k\x00": "v\udfff"}})
    [image] = scan(str(built.path)).images
    assert [f.path for f in image.files] == ["/bin/\\xff\\xfe-evil", "/nul\\x00name"]
    assert image.layers[0].created_by == "sh -c \\udcff lone surrogate \\x00 nul"
    assert image.user == "\\ud800" and image.config["config"]["Labels"] == {"k\\x00": "v\\udfff"}
    every = json.dumps(to_dict_all(image), ensure_ascii=False)
    every.encode("utf-8")  # no lone surrogates anywhere
    assert "\x00" not in every
    recovered = b"".join(open_layer_file(str(built.path), 0, "/bin/\\xff\\xfe-evil"))
    assert recovered == b"x"


def to_dict_all(image: object) -> dict:
    from dataclasses import asdict
    return json.loads(json.dumps(asdict(image), default=str))  # type: ignore[call-overload]
