"""Every source format and layout, prefixes, tags, history, and multi-platform indexes."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from scanner.engine import ScanError, ScanOptions, list_platforms, scan
from scanner.engine.model import Change, EntryType
from tests.imagefactory import FORMATS, BuiltImage, Entry, build_image

LAYERS = [
    [Entry("/etc/", type="dir", mode=0o755), ("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
     Entry("/bin/", type="dir", mode=0o755),
     Entry("/bin/sh", b"\x7fELF\x02\x01\x01" + b"\x00" * 60, mode=0o755)],
    [Entry("/etc/", type="dir", mode=0o755), ("/etc/motd", b"hello\n"),
     Entry("/bin/ash", type="symlink", linkname="sh", mode=0o777)],
    [Entry("/etc/", type="dir", mode=0o755), ("/etc/motd", b"patched\n")],
]
SOURCE_FORMAT = {"docker-archive": "docker-archive", "docker-archive-oci": "docker-archive",
                 "oci-archive": "oci-archive", "oci": "oci-layout"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_and_compression(tmp_path: Path, fmt: str, compression: str) -> None:
    built = build_image(tmp_path / "img", LAYERS, fmt=fmt, compression=compression,
                        repo_tags=["example/app:1.0"])
    report = scan(str(built.path))
    assert report.source.format == SOURCE_FORMAT[fmt]
    [image] = report.images
    assert image.manifest_digest == built.manifest_digest
    assert image.config_digest == built.config_digest
    assert [layer.digest for layer in image.layers] == built.layer_digests
    assert [layer.diff_id for layer in image.layers] == built.diff_ids
    assert [layer.actual_diff_id for layer in image.layers] == built.diff_ids
    assert all(layer.trusted and layer.complete for layer in image.layers)
    assert [layer.compression for layer in image.layers] == [compression] * 3
    assert [f for f in image.findings if f.rule_id.startswith("integrity.")] == []
    assert image.platform == "linux/amd64"
    assert image.repo_tags == ["example/app:1.0"]
    files = {(f.layer_index, f.path): f for f in image.files}
    sh = files[(0, "/bin/sh")]
    assert sh.sha256 == _sha(b"\x7fELF\x02\x01\x01" + b"\x00" * 60)
    assert {"elf", "executable"} <= sh.flags
    assert files[(1, "/bin/ash")].type is EntryType.SYMLINK and files[(1, "/bin/ash")].link_target == "sh"
    assert files[(2, "/etc/motd")].change is Change.MODIFIED and not files[(1, "/etc/motd")].visible
    graves = [(g.path, g.added_layer, g.hidden_layer, g.how) for g in image.graveyard
              if g.type is EntryType.FILE]
    assert graves == [("/etc/motd", 1, 2, "shadowed")]
    assert report.stats.layers == 3 and report.stats.files == len(image.files)


@pytest.mark.parametrize("fmt,prefix", [
    ("docker-archive", "docker-archive:"), ("oci-archive", "oci-archive:"), ("oci", "oci:"),
    ("docker-archive-oci", "docker-archive:"),
])
def test_transport_prefixes(tmp_path: Path, fmt: str, prefix: str) -> None:
    built = build_image(tmp_path / "img", LAYERS[:1], fmt=fmt)
    report = scan(prefix + str(built.path))
    assert report.images[0].config_digest == built.config_digest
    assert report.source.path == str(built.path)


def test_oci_ref_selects_an_image(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", LAYERS[:1], fmt="oci", repo_tags=["a/app:1.0"])
    assert scan(f"oci:{built.path}:a/app:1.0").images[0].repo_tags == ["a/app:1.0"]
    with pytest.raises(ScanError, match="no image named"):
        scan(f"oci:{built.path}:other")


def test_legacy_docker_archive_symlinked_layer(tmp_path: Path) -> None:
    same = [("/data", b"same bytes")]
    built = build_image(tmp_path / "img.tar", [same, [("/other", b"x")], same], fmt="docker-archive")
    with tarfile.open(built.path) as tar:
        links = [m for m in tar.getmembers() if m.issym()]
    assert len(links) == 1 and links[0].name.endswith("/layer.tar")
    report = scan(str(built.path))
    [image] = report.images
    assert image.manifest_digest == ""  # the legacy layout has no manifest blob
    assert [layer.digest for layer in image.layers] == built.layer_digests
    by_layer = {i: [f.path for f in image.files if f.layer_index == i] for i in range(3)}
    assert by_layer == {0: ["/data"], 1: ["/other"], 2: ["/data"]}
    first, last = (f for f in image.files if f.path == "/data")
    assert first is not last and not first.visible and last.visible and last.change is Change.MODIFIED
    assert report.stats.bytes_read == image.layers[0].size + image.layers[1].size  # read once


def test_docker_25_repo_tags_and_annotations(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", LAYERS[:1], fmt="docker-archive-oci",
                        repo_tags=["registry.example/app:1", "registry.example/app:latest"])
    [image] = scan(str(built.path)).images
    assert image.repo_tags == ["registry.example/app:1", "registry.example/app:latest"]


def test_config_user_created_and_history(tmp_path: Path) -> None:
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:abc in /"},
        {"created_by": "/bin/sh -c #(nop) ENV A=1", "empty_layer": True},
        {"created_by": "/bin/sh -c #(nop) USER root", "empty_layer": True},
        {"created_by": "/bin/sh -c curl x | sh"},
        {"created_by": "/bin/sh -c #(nop) COPY motd", "empty_layer": False},
        {"created_by": "/bin/sh -c #(nop) CMD [\"sh\"]", "empty_layer": True},
    ]
    built = build_image(tmp_path / "img.tar", LAYERS, fmt="oci-archive", history=history,
                        config={"User": "0:0", "created": "2025-02-03T04:05:06Z", "Env": ["LD_PRELOAD=/x"]})
    [image] = scan(str(built.path)).images
    assert image.user == "0:0" and image.created == "2025-02-03T04:05:06Z"
    assert image.config["config"]["Env"] == ["LD_PRELOAD=/x"]
    assert [layer.created_by for layer in image.layers] == [
        "/bin/sh -c #(nop) ADD file:abc in /", "/bin/sh -c curl x | sh", "/bin/sh -c #(nop) COPY motd"]
    assert [layer.empty_history for layer in image.layers] == [
        [], ["/bin/sh -c #(nop) ENV A=1", "/bin/sh -c #(nop) USER root"], []]
    assert image.trailing_history == ['/bin/sh -c #(nop) CMD ["sh"]']


PLATFORMS = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]


@pytest.mark.parametrize("fmt", ["oci-archive", "oci", "docker-archive-oci"])
def test_multi_platform_index(tmp_path: Path, fmt: str) -> None:
    built = build_image(tmp_path / "img", LAYERS[:2], fmt=fmt, platforms=PLATFORMS, repo_tags=["m/app:2"])
    [image] = scan(str(built.path)).images  # linux/amd64 by default
    assert image.platform == "linux/amd64" and image.manifest_digest == built.manifests["linux/amd64"]
    assert image.repo_tags == ["m/app:2"]
    [arm] = scan(str(built.path), options=ScanOptions(platform="linux/arm64")).images
    assert arm.platform == "linux/arm64/v8" and arm.manifest_digest == built.manifests["linux/arm64/v8"]
    report = scan(str(built.path), options=ScanOptions(all_platforms=True))
    assert sorted(i.platform for i in report.images) == sorted(PLATFORMS)
    assert {i.manifest_digest for i in report.images} == set(built.manifests.values())
    # Layers are shared: each distinct blob is read once, yet every image has its own entries.
    assert report.stats.bytes_read == sum(_layer_sizes(built, 2))
    assert all(len(i.files) == len(report.images[0].files) for i in report.images)
    assert report.images[0].files[0] is not report.images[1].files[0]
    with pytest.raises(ScanError, match=r"no image for platform linux/s390x .*available: linux/amd64"):
        scan(str(built.path), options=ScanOptions(platform="linux/s390x"))
    listed = list_platforms(str(built.path))
    assert sorted(p["platform"] for p in listed) == sorted(PLATFORMS)


def _layer_sizes(built: BuiltImage, n: int) -> list[int]:
    path = built.path
    sizes = []
    for digest in built.layer_digests[:n]:
        hexd = digest.split(":")[1]
        if Path(path).is_dir():
            sizes.append((Path(path) / "blobs/sha256" / hexd).stat().st_size)
        else:
            with tarfile.open(path) as tar:
                sizes.append(tar.getmember(f"blobs/sha256/{hexd}").size)
    return sizes


def test_flat_index_with_platforms_in_index_json(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", LAYERS[:1], fmt="oci", platforms=PLATFORMS[:2])
    index_blob = built.path / "blobs/sha256" / built.index_digest.split(":")[1]
    (built.path / "index.json").write_bytes(index_blob.read_bytes())  # index.json lists the manifests
    assert scan(str(built.path)).images[0].platform == "linux/amd64"
    assert len(scan(str(built.path), options=ScanOptions(all_platforms=True)).images) == 2


def test_single_platform_image_is_scanned_whatever_its_platform(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", LAYERS[:1], fmt="oci-archive", platforms=["linux/arm64"])
    assert scan(str(built.path)).images[0].platform == "linux/arm64"


def test_attestation_manifests_are_skipped(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", LAYERS[:1], fmt="oci", platforms=["linux/amd64", "linux/arm64"])
    index_path = built.path / "blobs/sha256" / built.index_digest.split(":")[1]
    index = json.loads(index_path.read_bytes())
    index["manifests"].append({
        **index["manifests"][0], "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
    })
    data = json.dumps(index).encode()
    new_digest = hashlib.sha256(data).hexdigest()
    (built.path / "blobs/sha256" / new_digest).write_bytes(data)
    top = json.loads((built.path / "index.json").read_bytes())
    top["manifests"][0].update(digest=f"sha256:{new_digest}", size=len(data))
    (built.path / "index.json").write_text(json.dumps(top))
    report = scan(str(built.path), options=ScanOptions(all_platforms=True))
    assert sorted(i.platform for i in report.images) == ["linux/amd64", "linux/arm64"]


def test_nested_index_depth_is_bounded(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img", LAYERS[:1], fmt="oci", platforms=["linux/amd64"])
    blobs = built.path / "blobs/sha256"
    digest, size = built.index_digest, (blobs / built.index_digest.split(":")[1]).stat().st_size
    for _ in range(6):  # wrap the index in six more indexes
        doc = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                          "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                                         "digest": digest, "size": size}]}).encode()
        digest, size = "sha256:" + hashlib.sha256(doc).hexdigest(), len(doc)
        (blobs / digest.split(":")[1]).write_bytes(doc)
    (built.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size}]}))
    with pytest.raises(ScanError, match="nested more than 4 deep"):
        scan(str(built.path))


def test_unpacked_docker_archive_dir_is_refused(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", LAYERS[:1], fmt="docker-archive")
    out = tmp_path / "unpacked"
    out.mkdir()
    (out / "manifest.json").write_bytes(b"[]")
    with pytest.raises(ScanError, match="unpacked docker-archive"):
        scan(str(out))
    shutil.rmtree(out)
    assert scan(str(built.path)).images


def test_open_layer_file_chooses_the_image_by_digest(tmp_path: Path) -> None:
    from scanner.engine import open_layer_file

    built = build_image(tmp_path / "img", [[("/which", b"amd64")]], fmt="oci",
                        platforms=["linux/amd64", "linux/arm64"])
    arm_manifest = built.manifests["linux/arm64"]
    assert b"".join(open_layer_file(str(built.path), 0, "/which", image_digest=arm_manifest)) == b"amd64"
    assert b"".join(open_layer_file(str(built.path), 0, "/which",
                                    image_digest=built.configs["linux/arm64"])) == b"amd64"
    with pytest.raises(ScanError, match="no image with digest"):
        open_layer_file(str(built.path), 0, "/which", image_digest="sha256:" + "0" * 64)
