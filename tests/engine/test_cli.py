"""``python -m scanner`` as a subprocess: exit codes 0/1/2, one-line errors, JSON, ``cat``, ``platforms``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imagefactory import Entry, build_image, compress, layer_tar, tamper, write_archive

REPO = Path(__file__).resolve().parents[2]
MINER = b"\x7fELF\x02\x01\x01\x00" + b"xmrig" * 500
LAYERS = [
    [Entry("/usr/", type="dir", mode=0o755), Entry("/usr/bin/", type="dir", mode=0o755),
     Entry("/usr/bin/tool", b"#!/bin/sh\n", mode=0o755)],
    [Entry("/usr/bin/.hidden_miner", MINER, mode=0o4755)],
    [Entry("/usr/bin/.wh..hidden_miner")],
]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=120)


@pytest.fixture
def image(tmp_path: Path):
    return build_image(tmp_path / "img.tar", LAYERS, fmt="oci-archive", repo_tags=["ex/miner:latest"])


def test_clean_scan_exits_0_with_a_table(image) -> None:
    result = run("scan", str(image.path), "--no-rules")  # the rule pack's own CLI tests: tests/rules
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "ex/miner:latest" in out and "linux/amd64" in out and "findings: 0" in out
    assert result.stderr == b""  # no progress bar when stderr is not a terminal


def test_json_is_the_design_document(image) -> None:
    result = run("scan", str(image.path), "--format", "json", "--no-rules")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert doc["schema"] == "lowerdir.scan/v1"
    assert doc["source"]["format"] == "oci-archive"
    assert doc["source"]["sha256"] == hashlib.sha256(image.path.read_bytes()).hexdigest()
    [img] = doc["images"]
    assert img["manifest_digest"] == image.manifest_digest
    assert [la["files_added"] for la in img["layers"]] == [3, 1, 0]
    assert [la["files_deleted"] for la in img["layers"]] == [0, 0, 1]


def test_findings_at_or_above_fail_on_exit_1(image) -> None:
    tamper(image, image.layer_digests[0], compress(layer_tar([("/usr/bin/tool", b"evil")]), "gzip"))
    result = run("scan", str(image.path), "--format", "json", "--no-rules")
    assert result.returncode == 1
    rules = {f["rule_id"] for f in json.loads(result.stdout)["images"][0]["findings"]}
    assert rules == {"integrity.digest-mismatch"}
    assert run("scan", str(image.path), "--no-rules", "--fail-on", "critical").returncode == 1


def test_fail_on_threshold(tmp_path: Path) -> None:
    # a duplicate entry is a LOW finding: fails with --fail-on low, passes with the default (high)
    layer = layer_tar([("/a", b"1"), ("/a", b"2")])
    built = build_image(tmp_path / "dup.tar", [layer], fmt="oci-archive")
    assert run("scan", str(built.path), "--no-rules").returncode == 0
    assert run("scan", str(built.path), "--no-rules", "--fail-on", "low").returncode == 1
    assert run("scan", str(built.path), "--no-rules", "--fail-on", "medium").returncode == 0


@pytest.mark.parametrize("make", ["missing", "random", "bad-json", "outside", "jobs"])
def test_unscannable_exits_2_with_one_line(tmp_path: Path, make: str) -> None:
    path = tmp_path / "x.tar"
    extra: list[str] = []
    if make == "random":
        path.write_bytes(os.urandom(2048))
    elif make == "bad-json":
        write_archive(path, [("manifest.json", b"[{oops")])
    elif make == "outside":
        write_archive(path, [("manifest.json", b'[{"Config": "../../etc/passwd", "Layers": []}]')])
    elif make == "jobs":
        build_image(path, LAYERS[:1], fmt="oci-archive")
        extra = ["--jobs", "0"]
    result = run("scan", str(path), *extra)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert result.stdout == b""


def test_cat_recovers_a_whited_out_file_from_its_layer(image) -> None:
    result = run("cat", str(image.path), "--layer", "1", "/usr/bin/.hidden_miner")
    assert result.returncode == 0 and result.stdout == MINER
    result = run("cat", f"oci-archive:{image.path}", "--layer", "1", "usr/bin/.hidden_miner")
    assert result.stdout == MINER
    gone = run("cat", str(image.path), "--layer", "2", "/usr/bin/.hidden_miner")
    assert gone.returncode == 2 and b"not in this layer" in gone.stderr
    assert run("cat", str(image.path), "--layer", "9", "/x").returncode == 2
    directory = run("cat", str(image.path), "--layer", "0", "/usr/bin")
    assert directory.returncode == 2 and b"not a regular file" in directory.stderr


def test_cat_follows_hard_links_and_refuses_symlinks(tmp_path: Path) -> None:
    big = os.urandom(3 << 20)  # spans several read chunks
    built = build_image(tmp_path / "img", [[("/data", big), Entry("/hard", type="hardlink", linkname="data"),
                                            Entry("/soft", type="symlink", linkname="/data")]], fmt="oci")
    assert run("cat", str(built.path), "--layer", "0", "/hard").stdout == big
    soft = run("cat", str(built.path), "--layer", "0", "/soft")
    assert soft.returncode == 2 and b"symbolic link to /data" in soft.stderr


def test_platforms_and_platform_flags(tmp_path: Path) -> None:
    built = build_image(tmp_path / "multi", LAYERS[:1], fmt="oci", platforms=["linux/amd64", "linux/arm64"])
    listed = json.loads(run("platforms", str(built.path), "--format", "json").stdout)
    assert sorted(p["platform"] for p in listed) == ["linux/amd64", "linux/arm64"]
    arm = json.loads(run("scan", str(built.path), "--format", "json", "--platform", "linux/arm64").stdout)
    assert [i["platform"] for i in arm["images"]] == ["linux/arm64"]
    both = json.loads(run("scan", str(built.path), "--format", "json", "--all-platforms").stdout)
    assert len(both["images"]) == 2
    missing = run("scan", str(built.path), "--platform", "windows/amd64")
    assert missing.returncode == 2 and b"available: linux/amd64, linux/arm64" in missing.stderr


def test_jobs_2_gives_the_same_report(tmp_path: Path) -> None:
    layers = [[(f"/l{i}/f{j}", os.urandom(2000)) for j in range(50)] for i in range(4)]
    built = build_image(tmp_path / "img.tar", layers, fmt="oci-archive")
    one = json.loads(run("scan", str(built.path), "--format", "json").stdout)
    two = json.loads(run("scan", str(built.path), "--format", "json", "--jobs", "2").stdout)
    one["stats"].pop("seconds"), two["stats"].pop("seconds")
    assert one == two
