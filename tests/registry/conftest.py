"""A real registry (Debian's ``docker-registry``, the CNCF distribution server) on 127.0.0.1, and skopeo.

Each fixture starts the server on a free loopback port with a temporary config and storage; one instance
requires htpasswd basic auth (bcrypt entries made here). Images are built by ``tests/imagefactory.py``
as OCI layouts and pushed with ``skopeo copy --dest-tls-verify=false``. Everything stays on loopback.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

MISSING = [tool for tool in ("docker-registry", "skopeo") if shutil.which(tool) is None]
pytestmark = pytest.mark.tools
USER, PASSWORD = "responder", "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    root: Path  # storage root
    proc: subprocess.Popen
    auth: bool
    work: Path

    def skopeo_push(self, layout: Path, ref: str, *, all_platforms: bool = False, tag: str = "") -> None:
        policy = self.work / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        args = ["skopeo", "--policy", str(policy), "copy", "--quiet", "--dest-tls-verify=false"]
        if all_platforms:
            args.append("--all")
        if self.auth:
            args += ["--dest-creds", f"{USER}:{PASSWORD}"]
        src = f"oci:{layout}" + (f":{tag}" if tag else "")
        proc = subprocess.run(
            [*args, src, f"docker://{self.host}/{ref}"],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.work), "TMPDIR": str(self.work)},
            check=False,
        )
        if proc.returncode:
            pytest.fail(f"skopeo copy failed: {proc.stderr[-2000:]}", pytrace=False)

    def client(self) -> httpx.Client:
        auth = (USER, PASSWORD) if self.auth else None
        return httpx.Client(base_url=f"http://{self.host}", auth=auth, timeout=30)

    def put_blob(self, repo: str, data: bytes) -> str:
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self.client() as c:
            start = c.post(f"/v2/{repo}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            done = c.put(
                f"{location}{sep}digest={digest}",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert done.status_code == 201, done.text
        return digest

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> None:
        with self.client() as c:
            r = c.put(f"/v2/{repo}/manifests/{ref}", content=data, headers={"Content-Type": media_type})
            assert r.status_code == 201, r.text

    def blob_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.root / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def _start(tmp: Path, auth: bool) -> Registry:
    port = free_port()
    root = tmp / "storage"
    root.mkdir(parents=True)
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-only-secret"},
    }
    if auth:
        import bcrypt

        htpasswd = tmp / "htpasswd"
        htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
        config["auth"] = {"htpasswd": {"realm": "lowerdir-test", "path": str(htpasswd)}}
    path = tmp / "config.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(["docker-registry", "serve", str(path)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None:
                pytest.fail(
                    f"docker-registry exited: {(tmp / 'registry.log').read_text()[-2000:]}", pytrace=False
                )
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("docker-registry did not start", pytrace=False)
    return Registry(f"127.0.0.1:{port}", root, proc, auth, tmp)


def _stop(reg: Registry) -> None:
    reg.proc.terminate()
    try:
        reg.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        reg.proc.kill()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if MISSING:
        pytest.skip(f"needs {' and '.join(MISSING)} (apt-get install docker-registry skopeo)")
    reg = _start(tmp_path_factory.mktemp("registry"), auth=False)
    yield reg
    _stop(reg)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    if MISSING:
        pytest.skip(f"needs {' and '.join(MISSING)} (apt-get install docker-registry skopeo)")
    reg = _start(tmp_path_factory.mktemp("auth-registry"), auth=True)
    yield reg
    _stop(reg)
