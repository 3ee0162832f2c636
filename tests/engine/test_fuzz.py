"""Hypothesis fuzzing of the tar walker, the layer scanner and the manifest/index parsing.

The only acceptable outcomes: a clean result, the walker's own errors (TarFormatError, LimitExceeded)
at the lowest level, and ScanError at the public API. Anything else escaping is a bug.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from scanner.engine import Limits, ScanError, scan
from scanner.engine.compression import BlobLocation
from scanner.engine.layers import scan_layer
from scanner.engine.limits import LimitExceeded
from scanner.engine.tarstream import TarFormatError, TarWalker
from tests.engine import hostile as h
from tests.imagefactory import Entry, build_image, layer_tar, write_archive

SMALL = Limits(max_members=500, max_meta_bytes=64 << 10, max_member_size=1 << 20, max_path_length=1024,
               ratio_grace_bytes=1 << 20)


def _seed_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("a" * 120, b"long"), ("etc/passwd", b"root:x:0:0\n" * 30)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return (buf.getvalue()[:-2048] + h.pax({"path": "p" * 150, "uid": "7"}) + h.member("x", b"y" * 700)
            + h.gnu_long("k" * 200, link=True) + h.member("l", type=b"2") + h.END)


SEED = _seed_tar()


@st.composite
def mutated_tar(draw: st.DrawFn) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def _feed(data: bytes, chunk: int) -> None:
    walker = TarWalker(lambda *m: None, SMALL)
    for i in range(0, len(data), chunk):
        walker.feed(data[i:i + chunk])
    walker.close()


@given(st.one_of(mutated_tar(), st.binary(max_size=4096)), st.integers(1, 2000))
def test_walker_only_raises_its_own_errors(data: bytes, chunk: int) -> None:
    with contextlib.suppress(TarFormatError, LimitExceeded):
        _feed(data, chunk)


@st.composite
def header_fields(draw: st.DrawFn) -> bytes:
    """Headers with valid checksums but arbitrary numeric fields and types."""
    short, long = st.binary(min_size=1, max_size=8), st.binary(min_size=1, max_size=12)
    fields = {"mode": draw(short).ljust(8, b"\x00"), "uid": draw(short).ljust(8, b"\x00"),
              "size": draw(long).ljust(12, b"\x00"), "mtime": draw(long).ljust(12, b"\x00")}
    return h.header(draw(st.binary(min_size=1, max_size=100)), type=draw(st.binary(min_size=1, max_size=1)),
                    fields=fields, linkname=draw(st.binary(max_size=100)))


@given(st.lists(header_fields(), min_size=1, max_size=4), st.binary(max_size=2048))
def test_walker_on_checksummed_garbage_headers(headers: list[bytes], tail: bytes) -> None:
    with contextlib.suppress(TarFormatError, LimitExceeded):
        _feed(b"".join(headers) + tail, 512)


@given(st.one_of(mutated_tar(), st.binary(max_size=3000)), st.sampled_from(["none", "gzip", "gzip-cut"]))
def test_scan_layer_never_raises_on_content(data: bytes, wrap: str) -> None:
    if wrap != "none":
        data = gzip.compress(data, mtime=0)
        if wrap == "gzip-cut":
            data = data[:len(data) // 2]
    with tempfile.NamedTemporaryFile() as fh:
        fh.write(data)
        fh.flush()
        result = scan_layer(BlobLocation(fh.name, 0, len(data)), SMALL)
    assert result.blob_digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.complete or result.issues


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(["sha256:" + "a" * 64, "../../etc/passwd", "blobs/sha256/x",
                                              "application/vnd.oci.image.index.v1+json",
                                              "application/vnd.oci.image.manifest.v1+json"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["manifests", "mediaType", "digest", "size", "platform", "config", "layers",
                         "Config", "Layers", "RepoTags", "annotations", "rootfs", "diff_ids", "history"]),
        children, max_size=5),
    max_leaves=25,
)


def _descriptor_from(doc: object, real: dict) -> object:
    """Sometimes point fuzzed documents at the real manifest, so deeper parsing gets exercised."""
    if isinstance(doc, dict) and isinstance(doc.get("manifests"), list) and doc["manifests"]:
        doc["manifests"][0] = real
    return doc


@given(json_values, st.booleans())
def test_index_parsing_only_raises_scan_error(doc: object, keep_real: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        built = build_image(Path(tmp) / "oci", [[Entry("/f", b"x")]], fmt="oci")
        real = json.loads((built.path / "index.json").read_bytes())["manifests"][0]
        if keep_real:
            doc = _descriptor_from(doc, real)
        (built.path / "index.json").write_text(json.dumps(doc))
        try:
            scan(str(built.path))
        except ScanError as exc:
            assert "\n" not in str(exc)


@given(json_values, json_values)
def test_manifest_and_config_parsing_only_raise_scan_error(manifest: object, config: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        built = build_image(Path(tmp) / "oci", [[Entry("/f", b"x")]], fmt="oci")
        blobs = built.path / "blobs/sha256"
        # Replace the manifest and the config in place (digests no longer match: findings, not errors).
        if isinstance(manifest, dict) and manifest.get("config") is not None:
            manifest["config"] = {"digest": built.config_digest, "size": 1}
        (blobs / built.manifest_digest.split(":")[1]).write_text(json.dumps(manifest))
        (blobs / built.config_digest.split(":")[1]).write_text(json.dumps(config))
        try:
            scan(str(built.path))
        except ScanError as exc:
            assert "\n" not in str(exc)


@given(json_values)
def test_docker_manifest_parsing_only_raises_scan_error(doc: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layer = layer_tar([("/f", b"x")])
        archive = write_archive(Path(tmp) / "a.tar", [
            ("manifest.json", json.dumps(doc).encode()), ("c.json", b'{"rootfs": {"diff_ids": []}}'),
            ("l/layer.tar", layer)])
        try:
            scan(str(archive))
        except ScanError as exc:
            assert "\n" not in str(exc)


@given(st.data())
def test_mutated_outer_archive_only_raises_scan_error(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        built = build_image(Path(tmp) / "img.tar", [[Entry("/f", b"x" * 100)]], fmt="docker-archive-oci")
        raw = bytearray(built.path.read_bytes())
        for _ in range(data.draw(st.integers(1, 6))):
            pos = data.draw(st.integers(0, min(len(raw), 6000) - 1))
            raw[pos] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            raw = raw[:data.draw(st.integers(0, len(raw)))]
        built.path.write_bytes(bytes(raw))
        try:
            scan(str(built.path))
        except ScanError as exc:
            assert "\n" not in str(exc)
