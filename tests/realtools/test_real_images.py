"""The engine on images written by real tools: buildah builds, skopeo converts (see conftest.py).

The same image as a docker-archive (plain tar layers), an oci-archive (gzip) and an OCI layout (zstd)
must give the same diff_ids, config digest, files, graveyard and findings; only the compressed blob
digests (and so the manifests) legitimately differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from scanner.engine import ScanOptions, scan
from scanner.engine.model import Change, ImageResult, ScanReport
from scanner.engine.report import to_dict

from .conftest import SKIP_REASON, RealImages, read_oci_archive

pytestmark = [pytest.mark.tools, pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "tools present")]

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("docker-archive", "oci-archive", "oci-zstd")
ENGINE_FORMAT = {"docker-archive": "docker-archive", "oci-archive": "oci-archive", "oci-zstd": "oci-layout"}
SEVERITIES = ["info", "low", "medium", "high", "critical"]

SHA = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
SHA_OR_EMPTY = {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$"}
REPORT_SCHEMA = {  # DESIGN §4, the lowerdir.scan/v1 contract
    "type": "object",
    "required": ["schema", "source", "images", "stats"],
    "properties": {
        "schema": {"const": "lowerdir.scan/v1"},
        "source": {
            "type": "object",
            "required": ["path", "format", "sha256"],
            "properties": {
                "path": {"type": "string"},
                "format": {"enum": ["docker-archive", "oci-archive", "oci-layout", "registry"]},
                "sha256": {"type": "string"},
            },
        },
        "images": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "manifest_digest",
                    "config_digest",
                    "repo_tags",
                    "platform",
                    "user",
                    "created",
                    "layers",
                    "findings",
                ],
                "properties": {
                    "manifest_digest": SHA_OR_EMPTY,
                    "config_digest": SHA,
                    "repo_tags": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "user": {"type": "string"},
                    "created": {"type": "string"},
                    "layers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "index",
                                "digest",
                                "diff_id",
                                "size",
                                "created_by",
                                "empty_history",
                                "files_added",
                                "files_modified",
                                "files_deleted",
                            ],
                            "properties": {
                                "index": {"type": "integer", "minimum": 0},
                                "digest": SHA,
                                "diff_id": SHA,
                                "size": {"type": "integer", "minimum": 0},
                                "created_by": {"type": "string"},
                                "empty_history": {"type": "array", "items": {"type": "string"}},
                                "files_added": {"type": "integer", "minimum": 0},
                                "files_modified": {"type": "integer", "minimum": 0},
                                "files_deleted": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                    "findings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "rule_id",
                                "severity",
                                "title",
                                "detail",
                                "layer_index",
                                "layer_digest",
                                "path",
                                "sha256",
                                "fingerprint",
                            ],
                            "properties": {
                                "rule_id": {"type": "string", "pattern": r"^[a-z0-9-]+\.[a-z0-9.-]+$"},
                                "severity": {"enum": SEVERITIES},
                                "title": {"type": "string", "minLength": 1},
                                "detail": {"type": "string"},
                                "layer_index": {"type": ["integer", "null"]},
                                "layer_digest": {"type": "string"},
                                "path": {"type": "string"},
                                "sha256": {"type": "string"},
                                "fingerprint": {"type": "string", "minLength": 1},
                            },
                        },
                    },
                },
            },
        },
        "stats": {
            "type": "object",
            "required": ["layers", "files", "bytes_read", "seconds"],
            "properties": {
                "layers": {"type": "integer", "minimum": 0},
                "files": {"type": "integer", "minimum": 0},
                "bytes_read": {"type": "integer", "minimum": 0},
                "seconds": {"type": "number", "minimum": 0},
            },
        },
    },
}


def source_of(images: RealImages, fmt: str) -> str:
    """The skopeo-style source string of one format."""
    return {
        "docker-archive": f"docker-archive:{images.docker_archive}",
        "oci-archive": f"oci-archive:{images.oci_archive}",
        "oci-zstd": f"oci:{images.oci_zstd}:{images.oci_ref}",
    }[fmt]


@pytest.fixture(scope="module")
def reports(real_images: RealImages) -> dict[str, ScanReport]:
    """One in-process scan of each format (jobs=1)."""
    return {fmt: scan(source_of(real_images, fmt), options=ScanOptions(jobs=1)) for fmt in FORMATS}


def only_image(report: ScanReport) -> ImageResult:
    """The single image of a single-platform report."""
    assert len(report.images) == 1, [img.platform for img in report.images]
    return report.images[0]


def file_rows(image: ImageResult) -> list[tuple]:
    """Everything about every entry that must not depend on the archive format."""
    return sorted(
        (
            f.path,
            f.layer_index,
            str(f.type),
            f.mode,
            f.uid,
            f.gid,
            f.size,
            f.mtime,
            f.link_target,
            f.sha256,
            tuple(sorted(f.flags)),
            str(f.change),
            f.visible,
        )
        for f in image.files
    )


def grave_rows(image: ImageResult) -> list[tuple]:
    """The graveyard, format-independent."""
    return sorted(
        (g.path, str(g.type), g.added_layer, g.hidden_layer, g.how, g.sha256, g.size, g.mode)
        for g in image.graveyard
    )


def finding_rows(image: ImageResult) -> list[tuple]:
    """Findings without the blob digest (it legitimately differs between gzip, zstd and plain tar)."""
    return sorted((f.rule_id, str(f.severity), f.layer_index, f.path, f.sha256) for f in image.findings)


def oci_layout_manifest(index: bytes, blob: Callable[[str], bytes]) -> tuple[str, dict]:
    """Follow index.json to the (single) image manifest: its digest and document."""
    digest = json.loads(index)["manifests"][0]["digest"]
    return digest, json.loads(blob(digest))


def expected_manifests(images: RealImages) -> dict[str, tuple[str, dict]]:
    """The manifests skopeo wrote for the two OCI outputs, read without the engine."""
    members = read_oci_archive(images.oci_archive)
    archive = oci_layout_manifest(
        members["index.json"], lambda d: members["blobs/sha256/" + d.removeprefix("sha256:")]
    )
    zstd = oci_layout_manifest(
        (images.oci_zstd / "index.json").read_bytes(),
        lambda d: (images.oci_zstd / "blobs/sha256" / d.removeprefix("sha256:")).read_bytes(),
    )
    return {"oci-archive": archive, "oci-zstd": zstd}


def test_each_format_scans_cleanly(reports: dict[str, ScanReport], real_images: RealImages) -> None:
    for fmt, report in reports.items():
        image = only_image(report)
        assert report.source.format == ENGINE_FORMAT[fmt]
        assert len(image.layers) == len(real_images.diff_ids) == 4, fmt
        assert [layer.index for layer in image.layers] == [0, 1, 2, 3]
        assert all(layer.trusted for layer in image.layers), fmt
        assert not [f for f in image.findings if f.rule_id.startswith("integrity.")], fmt
        assert image.platform == "linux/amd64"
        assert report.stats.layers == 4
        assert report.stats.files > 0


def test_diff_ids_and_config_digest_identical(
    reports: dict[str, ScanReport], real_images: RealImages
) -> None:
    for fmt, report in reports.items():
        image = only_image(report)
        assert [layer.diff_id for layer in image.layers] == real_images.diff_ids, fmt
        assert image.config_digest == real_images.config_digest, fmt
        assert [layer.uncompressed_size for layer in image.layers] == [
            layer.uncompressed_size for layer in only_image(reports["docker-archive"]).layers
        ]


def test_blob_and_manifest_digests_per_format(
    reports: dict[str, ScanReport], real_images: RealImages
) -> None:
    docker = only_image(reports["docker-archive"])
    # skopeo's docker-archive stores layers uncompressed: the blob digest is the diff_id.
    assert [layer.digest for layer in docker.layers] == real_images.diff_ids
    assert real_images.image_tag in docker.repo_tags, docker.repo_tags

    expected = expected_manifests(real_images)
    for fmt, (manifest_digest, manifest) in expected.items():
        image = only_image(reports[fmt])
        assert image.manifest_digest == manifest_digest, fmt
        assert [layer.digest for layer in image.layers] == [d["digest"] for d in manifest["layers"]], fmt
        assert [layer.size for layer in image.layers] == [d["size"] for d in manifest["layers"]], fmt
        assert image.config_digest == manifest["config"]["digest"]
    gzip_digests = {layer.digest for layer in only_image(reports["oci-archive"]).layers}
    zstd_digests = {layer.digest for layer in only_image(reports["oci-zstd"]).layers}
    assert gzip_digests.isdisjoint(zstd_digests)
    assert expected["oci-archive"][0] != expected["oci-zstd"][0]
    assert all("zstd" in layer.media_type for layer in only_image(reports["oci-zstd"]).layers)
    assert all("gzip" in layer.media_type for layer in only_image(reports["oci-archive"]).layers)


def test_same_files_in_all_formats(reports: dict[str, ScanReport], real_images: RealImages) -> None:
    rows = {fmt: file_rows(only_image(report)) for fmt, report in reports.items()}
    assert rows["docker-archive"] == rows["oci-archive"] == rows["oci-zstd"]
    image = only_image(reports["oci-zstd"])
    assert not [f.path for f in image.files if "/.wh." in f.path], "whiteouts must not be recorded as files"

    by_path: dict[str, list] = {}
    for entry in image.files:
        by_path.setdefault(entry.path, []).append(entry)
    for path, digest in real_images.contents.items():
        assert digest in {e.sha256 for e in by_path.get(path, [])}, path
    for path, digest in real_images.deleted.items():
        (added,) = [e for e in by_path[path] if e.change != Change.DELETED]
        assert (added.layer_index, added.sha256, added.visible) == (0, digest, False), path
        (gone,) = [e for e in by_path[path] if e.change == Change.DELETED]
        assert (gone.layer_index, gone.visible) == (real_images.whiteout_layer, False), path
    motd = sorted(by_path["/etc/motd"], key=lambda e: e.layer_index)
    assert [(e.layer_index, e.change, e.visible) for e in motd] == [
        (0, Change.ADDED, False),
        (real_images.whiteout_layer, Change.MODIFIED, True),
    ]
    (helper,) = by_path[real_images.setuid_path]
    assert helper.mode & 0o4000, oct(helper.mode)
    assert {"setuid", "hidden", "elf"} <= helper.flags, helper.flags
    (script,) = by_path["/usr/local/bin/run.sh"]
    assert script.layer_index == 1 and "executable" in script.flags and script.visible
    (notes,) = by_path["/srv/notes.txt"]
    assert notes.layer_index == 3 and notes.visible


def test_graveyard_in_all_formats(reports: dict[str, ScanReport], real_images: RealImages) -> None:
    rows = {fmt: grave_rows(only_image(report)) for fmt, report in reports.items()}
    assert rows["docker-archive"] == rows["oci-archive"] == rows["oci-zstd"]
    graves = {(g.path, g.how): g for g in only_image(reports["oci-archive"]).graveyard}
    for path, digest in real_images.deleted.items():
        grave = graves[(path, "whiteout")]
        expected = (0, real_images.whiteout_layer, digest)
        assert (grave.added_layer, grave.hidden_layer, grave.sha256) == expected
        assert grave.type == "file" and grave.size > 0
    for path, digest in real_images.shadowed.items():
        grave = graves[(path, "shadowed")]
        expected = (0, real_images.whiteout_layer, digest)
        assert (grave.added_layer, grave.hidden_layer, grave.sha256) == expected


def test_layer_counts_and_history(reports: dict[str, ScanReport], real_images: RealImages) -> None:
    counts = {
        fmt: [
            (la.files_added, la.files_modified, la.files_deleted, la.created_by, tuple(la.empty_history))
            for la in only_image(report).layers
        ]
        for fmt, report in reports.items()
    }
    assert counts["docker-archive"] == counts["oci-archive"] == counts["oci-zstd"]
    layers = only_image(reports["oci-archive"]).layers
    whiteout = layers[real_images.whiteout_layer]
    assert whiteout.files_deleted == len(real_images.deleted)
    assert whiteout.files_modified >= len(real_images.shadowed)
    assert "rm -f /usr/bin/tool" in whiteout.created_by
    assert "COPY" in layers[0].created_by and "COPY" in layers[3].created_by
    history = [step for layer in layers for step in layer.empty_history]
    assert any("ENV APP_MODE=forensics" in step for step in history), history
    config = json.dumps(only_image(reports["oci-archive"]).config)
    assert "APP_MODE=forensics" in config


def test_same_findings_in_all_formats(reports: dict[str, ScanReport]) -> None:
    rows = {fmt: finding_rows(only_image(report)) for fmt, report in reports.items()}
    assert rows["docker-archive"] == rows["oci-archive"] == rows["oci-zstd"], rows


def test_autodetect_without_prefix(reports: dict[str, ScanReport], real_images: RealImages) -> None:
    paths = {
        "docker-archive": real_images.docker_archive,
        "oci-archive": real_images.oci_archive,
        "oci-zstd": real_images.oci_zstd,
    }
    for fmt, path in paths.items():
        report = scan(str(path))
        assert report.source.format == ENGINE_FORMAT[fmt]
        image, known = only_image(report), only_image(reports[fmt])
        assert (image.manifest_digest, image.config_digest) == (known.manifest_digest, known.config_digest)
        assert file_rows(image) == file_rows(known)


def test_jobs_2_gives_the_same_report(reports: dict[str, ScanReport], real_images: RealImages) -> None:
    parallel = only_image(scan(source_of(real_images, "oci-zstd"), options=ScanOptions(jobs=2)))
    serial = only_image(reports["oci-zstd"])
    assert file_rows(parallel) == file_rows(serial)
    assert grave_rows(parallel) == grave_rows(serial)
    assert finding_rows(parallel) == finding_rows(serial)
    assert [la.digest for la in parallel.layers] == [la.digest for la in serial.layers]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m scanner ...`` in a child process, as a user would run it."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_json_contract(reports: dict[str, ScanReport], real_images: RealImages) -> None:
    proc = run_cli("scan", source_of(real_images, "oci-archive"), "--format", "json", "--jobs", "2")
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, REPORT_SCHEMA)
    severities = {f["severity"] for img in doc["images"] for f in img["findings"]}
    expected_rc = 1 if severities & {"high", "critical"} else 0
    assert proc.returncode == expected_rc, proc.stderr
    assert doc["source"]["format"] == "oci-archive"
    assert (
        doc["source"]["sha256"].removeprefix("sha256:")
        == hashlib.sha256(real_images.oci_archive.read_bytes()).hexdigest()
    )
    assert doc["stats"]["layers"] == 4
    (image,) = doc["images"]
    assert image["config_digest"] == real_images.config_digest
    assert [la["diff_id"] for la in image["layers"]] == real_images.diff_ids
    in_process = to_dict(reports["oci-archive"])["images"][0]
    assert sorted(f["fingerprint"] for f in image["findings"]) == sorted(
        f["fingerprint"] for f in in_process["findings"]
    )
    # --fail-on critical moves the bar: exit 1 only when something is critical.
    proc = run_cli(
        "scan", source_of(real_images, "docker-archive"), "--format", "json", "--fail-on", "critical"
    )
    assert proc.returncode == (1 if "critical" in severities else 0), proc.stderr


def test_cli_truncated_real_archive_exits_2(real_images: RealImages, tmp_path: Path) -> None:
    data = real_images.docker_archive.read_bytes()
    cut = tmp_path / "truncated.tar"
    cut.write_bytes(data[: len(data) // 2])
    proc = run_cli("scan", f"docker-archive:{cut}", "--format", "json")
    assert proc.returncode == 2, (proc.returncode, proc.stdout[:500], proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_multi_platform_index(real_images: RealImages) -> None:
    default = scan(str(real_images.multi_arch))
    assert [img.platform for img in default.images] == ["linux/amd64"]
    assert default.images[0].config_digest == real_images.platform_configs["linux/amd64"]

    arm = scan(f"oci-archive:{real_images.multi_arch}", options=ScanOptions(platform="linux/arm64"))
    assert [(img.platform, img.config_digest) for img in arm.images] == [
        ("linux/arm64", real_images.platform_configs["linux/arm64"])
    ]

    both = scan(f"oci-archive:{real_images.multi_arch}", options=ScanOptions(all_platforms=True))
    assert sorted((img.platform, img.config_digest) for img in both.images) == sorted(
        real_images.platform_configs.items()
    )
    # Same files in both platforms (same Containerfile and context), different configs.
    amd, arm64 = sorted(both.images, key=lambda img: img.platform)
    assert {(f.path, f.sha256) for f in amd.files if f.layer_index < 2} == {
        (f.path, f.sha256) for f in arm64.files
    }


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _tampered_copy(images: RealImages, fmt: str, digest: str, dest: Path) -> str:
    """A copy of one format with one byte flipped in the middle of blob ``digest``; its source string."""
    if fmt == "oci-zstd":
        copy = dest / "layout"
        shutil.copytree(images.oci_zstd, copy)
        blob = copy / "blobs/sha256" / digest.removeprefix("sha256:")
        _flip_byte(blob, blob.stat().st_size // 2)
        return f"oci:{copy}:{images.oci_ref}"
    original = images.docker_archive if fmt == "docker-archive" else images.oci_archive
    copy = dest / original.name
    shutil.copyfile(original, copy)
    name = digest.removeprefix("sha256:")
    with tarfile.open(copy) as tar:
        member = next(m for m in tar if m.isfile() and name in m.name)
    _flip_byte(copy, member.offset_data + member.size // 2)
    return f"{fmt}:{copy}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_tampered_real_blob_is_a_finding(
    fmt: str, reports: dict[str, ScanReport], real_images: RealImages, tmp_path: Path
) -> None:
    clean = only_image(reports[fmt])
    target = clean.layers[3]  # the top layer: /srv/notes.txt
    image = only_image(scan(_tampered_copy(real_images, fmt, target.digest, tmp_path)))
    mismatches = [f for f in image.findings if f.rule_id == "integrity.digest-mismatch"]
    assert mismatches and {f.layer_index for f in mismatches} == {3}, image.findings
    assert all(f.severity == "critical" for f in mismatches)
    assert [la.trusted for la in image.layers] == [True, True, True, False]
    # The rest of the scan completes: the lower layers' files are all there, unchanged.
    assert [r for r in file_rows(image) if r[1] < 3] == [r for r in file_rows(clean) if r[1] < 3]
    assert not [f for f in image.findings if f.rule_id.startswith("integrity.")  # the rule pack's are there
                and f.layer_index is not None and f.layer_index < 3]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_cat_recovers_whited_out_files(fmt: str, real_images: RealImages) -> None:
    """Evidence recovery: the bytes of each deleted file, from the layer that added it."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    for path, digest in real_images.deleted.items():
        proc = subprocess.run(
            [sys.executable, "-m", "scanner", "cat", source_of(real_images, fmt), "--layer", "0", path],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert hashlib.sha256(proc.stdout).hexdigest() == digest, path
