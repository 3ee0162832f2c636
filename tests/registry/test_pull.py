"""Pulling from a real registry on loopback: tags, digests, indexes, auth, SSRF refusals, bounds."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scanner.engine import Limits, scan
from scanner.engine.registry import BlockedAddress, Credentials, NetPolicy, PullOptions, RegistryError, pull
from tests.imagefactory import build_image

from .conftest import PASSWORD, USER


def insecure(reg) -> NetPolicy:
    return NetPolicy.from_lists(insecure=[reg.host])


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    """One small image pushed as team/app:1.0 and a two-platform index as team/multi:2."""
    tmp = tmp_path_factory.mktemp("images")
    single = build_image(
        tmp / "single",
        [[("etc/motd", b"hello\n")], [("srv/app.sh", b"#!/bin/sh\necho hi\n")]],
        fmt="oci",
        repo_tags=["1.0"],
    )
    registry.skopeo_push(single.path, "team/app:1.0", tag="1.0")
    multi = build_image(
        tmp / "multi",
        [[("etc/motd", b"multi\n")]],
        fmt="oci",
        repo_tags=["2"],
        platforms=["linux/amd64", "linux/arm64"],
    )
    registry.skopeo_push(multi.path, "team/multi:2", tag="2", all_platforms=True)
    return single, multi


def members(path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_pull_by_tag_is_ordinary_evidence(registry, pushed, tmp_path) -> None:
    single, _ = pushed
    result = pull(f"{registry.host}/team/app:1.0", tmp_path / "app.tar", policy=insecure(registry))
    assert result.resolved_digest == result.manifest_digest == single.manifest_digest
    assert result.tag == "1.0" and not result.mismatches
    assert result.sha256 == hashlib.sha256((tmp_path / "app.tar").read_bytes()).hexdigest()
    assert result.custody_text().startswith(f"pulled from {registry.host}/team/app at ")
    assert f"1.0 resolved to {single.manifest_digest}" in result.custody_text()
    assert {"oci-layout", "index.json"} <= set(members(tmp_path / "app.tar"))
    report = scan(str(tmp_path / "app.tar"))
    [image] = report.images
    assert report.source.format == "oci-archive"
    assert image.manifest_digest == single.manifest_digest
    assert [layer.digest for layer in image.layers] == single.layer_digests
    assert all(layer.trusted for layer in image.layers)
    mutable = [f for f in image.findings if f.rule_id == "reference.mutable-tag"]
    assert mutable and single.manifest_digest in mutable[0].detail
    assert not [f for f in image.findings if f.severity in ("high", "critical")]


def test_pull_by_digest(registry, pushed, tmp_path) -> None:
    single, _ = pushed
    result = pull(
        f"{registry.host}/team/app@{single.manifest_digest}", tmp_path / "d.tar", policy=insecure(registry)
    )
    assert result.requested_digest == result.resolved_digest == single.manifest_digest
    assert f"{single.manifest_digest} resolved to {single.manifest_digest}" in result.custody_text()
    [image] = scan(str(tmp_path / "d.tar")).images
    assert not [f for f in image.findings if f.rule_id == "reference.mutable-tag"]


def test_unknown_digest_and_tag_are_clear_errors(registry, pushed, tmp_path) -> None:
    with pytest.raises(RegistryError, match="not found"):
        pull(f"{registry.host}/team/app@sha256:{'0' * 64}", tmp_path / "x.tar", policy=insecure(registry))
    with pytest.raises(RegistryError, match="not found"):
        pull(f"{registry.host}/team/app:nope", tmp_path / "x.tar", policy=insecure(registry))
    assert not (tmp_path / "x.tar").exists()


def test_content_that_does_not_match_its_digest_is_a_finding(registry, tmp_path) -> None:
    """The registry's storage was tampered with: the bytes served do not match the digest asked for."""
    image = build_image(tmp_path / "t", [[("etc/motd", b"tamper me\n")]], fmt="oci", repo_tags=["1"])
    registry.skopeo_push(image.path, "team/tampered:1", tag="1")
    blob = registry.blob_path(image.layer_digests[0])
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = pull(
        f"{registry.host}/team/tampered@{image.manifest_digest}",
        tmp_path / "t.tar",
        policy=insecure(registry),
    )
    assert any(image.layer_digests[0] in m for m in result.mismatches)
    [scanned] = scan(str(tmp_path / "t.tar")).images
    mismatch = [f for f in scanned.findings if f.rule_id == "integrity.digest-mismatch"]
    assert mismatch and mismatch[0].severity == "critical"
    assert scanned.layers[0].trusted is False


def test_index_records_every_platform_and_pulls_the_chosen_one(registry, pushed, tmp_path) -> None:
    _, multi = pushed
    result = pull(f"{registry.host}/team/multi:2", tmp_path / "m.tar", policy=insecure(registry))
    assert result.resolved_digest == multi.index_digest
    assert result.platform == "linux/amd64" and result.manifest_digest == multi.manifests["linux/amd64"]
    assert sorted(p["platform"] for p in result.platforms) == ["linux/amd64", "linux/arm64"]
    with tarfile.open(tmp_path / "m.tar") as tar:
        index = json.loads(tar.extractfile("index.json").read())
    assert json.loads(index["annotations"]["dev.lowerdir.pull.platforms"])[1]["platform"] == "linux/arm64"
    [image] = scan(str(tmp_path / "m.tar")).images
    assert image.platform == "linux/amd64"

    arm = pull(
        f"{registry.host}/team/multi:2",
        tmp_path / "a.tar",
        policy=insecure(registry),
        options=PullOptions(platform="linux/arm64"),
    )
    assert arm.manifest_digest == multi.manifests["linux/arm64"]
    with pytest.raises(
        RegistryError,
        match=r"no image for platform linux/s390x \(available: linux/amd64, "
        r"linux/arm64\)",
    ):
        pull(
            f"{registry.host}/team/multi:2",
            tmp_path / "s.tar",
            policy=insecure(registry),
            options=PullOptions(platform="linux/s390x"),
        )


def test_basic_auth(auth_registry, tmp_path) -> None:
    image = build_image(tmp_path / "p", [[("etc/motd", b"private\n")]], fmt="oci", repo_tags=["1"])
    auth_registry.skopeo_push(image.path, "team/private:1", tag="1")
    ref = f"{auth_registry.host}/team/private:1"
    policy = insecure(auth_registry)
    with pytest.raises(RegistryError, match="requires a user name and password"):
        pull(ref, tmp_path / "x.tar", policy=policy)
    wrong = PullOptions(credentials={auth_registry.host: Credentials(USER, "wrong")})
    with pytest.raises(RegistryError, match="refused the configured credentials") as info:
        pull(ref, tmp_path / "x.tar", policy=policy, options=wrong)
    assert "wrong" not in str(info.value) and PASSWORD not in str(info.value)
    right = PullOptions(credentials={auth_registry.host: Credentials(USER, PASSWORD)})
    result = pull(ref, tmp_path / "ok.tar", policy=policy, options=right)
    assert result.manifest_digest == image.manifest_digest


def test_loopback_needs_the_insecure_list(registry, pushed, tmp_path) -> None:
    with pytest.raises(BlockedAddress, match="non-public address 127.0.0.1"):
        pull(f"{registry.host}/team/app:1.0", tmp_path / "x.tar", policy=NetPolicy.from_lists())
    with pytest.raises(BlockedAddress, match="not on the allow-list"):
        pull(
            f"{registry.host}/team/app:1.0",
            tmp_path / "x.tar",
            policy=NetPolicy.from_lists(allowlist=["registry.example.com"]),
        )


class _Redirector(BaseHTTPRequestHandler):
    target = ""
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        self.send_response(307)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def redirector():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "refusing plain HTTP to 169.254.169.254"),
        ("https://169.254.169.254/latest/meta-data/", "non-public address 169.254.169.254"),
        ("https://10.0.0.7/internal", "non-public address 10.0.0.7"),
        ("http://127.0.0.1:9/blob", "refusing plain HTTP to 127.0.0.1:9"),
        ("file:///etc/passwd", "only http(s) is allowed"),
    ],
)
def test_redirects_to_disallowed_hosts_are_refused(redirector, tmp_path, target, reason) -> None:
    """A registry (or its blob storage) redirecting to internal addresses: refused before connecting."""
    _Redirector.target = target
    host = f"127.0.0.1:{redirector.server_address[1]}"
    with pytest.raises(BlockedAddress, match=reason.replace("(", r"\(").replace(")", r"\)")):
        pull(f"{host}/team/app:1", tmp_path / "x.tar", policy=NetPolicy.from_lists(insecure=[host]))


def test_redirect_off_the_allow_list_is_refused(redirector, tmp_path) -> None:
    _Redirector.target = "https://storage.example.net/blob"
    host = f"127.0.0.1:{redirector.server_address[1]}"
    policy = NetPolicy.from_lists(allowlist=[host], insecure=[host])
    with pytest.raises(BlockedAddress, match="storage.example.net:443 is not on the allow-list"):
        pull(f"{host}/team/app:1", tmp_path / "x.tar", policy=policy)


def test_size_bounds(registry, pushed, tmp_path) -> None:
    with pytest.raises(RegistryError, match="byte bound for a pull"):
        pull(
            f"{registry.host}/team/app:1.0",
            tmp_path / "x.tar",
            policy=insecure(registry),
            options=PullOptions(max_total_bytes=600),
        )
    with pytest.raises(RegistryError, match="over the 16-byte bound"):
        pull(
            f"{registry.host}/team/app:1.0",
            tmp_path / "x.tar",
            policy=insecure(registry),
            options=PullOptions(limits=Limits(max_json_bytes=16)),
        )
    assert not list(tmp_path.iterdir())  # nothing partial left behind


def test_cli_scans_a_docker_reference(registry, pushed) -> None:
    single, _ = pushed
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner",
            "scan",
            f"docker://{registry.host}/team/app:1.0",
            "--insecure-registry",
            registry.host,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"]["format"] == "registry"
    assert doc["source"]["path"] == f"docker://{registry.host}/team/app:1.0"
    assert doc["images"][0]["manifest_digest"] == single.manifest_digest
    assert f"resolved to {single.manifest_digest}" in proc.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", f"docker://{registry.host}/team/app:1.0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2 and "non-public address" in refused.stderr
