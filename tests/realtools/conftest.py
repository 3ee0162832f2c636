"""Build small images with real tools (buildah, skopeo) once per session, in pytest's tmp dirs.

Everything is FROM scratch with files made here (no network, no base image). buildah runs with vfs
storage, chroot isolation and a private ``--root``/``--runroot``/``TMPDIR``, so the system's container
storage is never touched. The image has four layers::

    0  COPY rootfs/ /                  (Containerfile, --layers) binary, script, text, a private key
       ENV APP_MODE=forensics          (an empty layer: history only)
    1  COPY extra/run.sh ...           (Containerfile)
    2  buildah mount + rm + commit     deletes two files (real whiteouts written by buildah),
                                       overwrites /etc/motd (shadowed) and adds a hidden setuid file
    3  COPY notes.txt                  (a second Containerfile on top, so the whiteouts are not on top)

skopeo then writes it as a docker-archive (plain tar layers), an oci-archive (gzip layers) and an OCI
layout with zstd layers. A second, arm64 build of the same Containerfile and ``buildah manifest push
--all`` give a real multi-platform oci-archive (index.json -> image index -> two manifests).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TOOLS = ("buildah", "skopeo")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
SKIP_REASON = ""
if MISSING:
    SKIP_REASON = f"needs {' and '.join(MISSING)} (apt-get install buildah skopeo)"
elif os.geteuid() != 0:
    SKIP_REASON = "needs root: `buildah mount` with vfs storage (used to write a whiteout) runs as root"

TAG = "localhost/lowerdir-realtools:1"
EPOCH = 0  # buildah --timestamp: deterministic layer mtimes and created times
CMD_TIMEOUT = 120

CONTAINERFILE = """\
FROM scratch
COPY rootfs/ /
ENV APP_MODE=forensics
COPY extra/run.sh /usr/local/bin/run.sh
"""
CONTAINERFILE_TOP = """\
FROM {base}
COPY notes.txt /srv/notes.txt
"""


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class RealImages:
    """Paths of the images the tools wrote, and the answers the engine must find in them."""

    docker_archive: Path
    oci_archive: Path
    oci_zstd: Path  # an OCI layout directory, zstd layers
    multi_arch: Path  # oci-archive holding an image index (linux/amd64 + linux/arm64)
    image_tag: str
    oci_ref: str  # org.opencontainers.image.ref.name in the OCI layouts
    config_digest: str  # sha256:… (buildah's image id)
    diff_ids: list[str]
    # path -> sha256 of its content as first written (layer 0 / 1 / 2 / 3)
    contents: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)  # whited-out path -> sha256 of what was there
    shadowed: dict[str, str] = field(default_factory=dict)  # overwritten path -> sha256 of the old bytes
    setuid_path: str = ""
    whiteout_layer: int = 2
    platform_configs: dict[str, str] = field(default_factory=dict)  # platform -> config digest


class Tools:
    """Runs buildah/skopeo against private storage under ``base``."""

    def __init__(self, base: Path) -> None:
        self.root = base / "storage" / "root"
        self.runroot = base / "storage" / "runroot"
        tmp = base / "tmp"
        for d in (self.root, self.runroot, tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.policy = base / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        storage_conf = base / "storage.conf"
        storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.root}"\nrunroot = "{self.runroot}"\n'
        )
        registries = base / "registries.conf"
        registries.write_text("unqualified-search-registries = []\n")
        self.env = {
            **os.environ,
            "TMPDIR": str(tmp),
            "BUILDAH_ISOLATION": "chroot",
            "CONTAINERS_STORAGE_CONF": str(storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(registries),
            "STORAGE_DRIVER": "vfs",
        }
        self.store = f"containers-storage:[vfs@{self.root}+{self.runroot}]"

    def run(self, *args: str) -> str:
        """Run one command; fail the fixture with its stderr if it fails."""
        proc = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=CMD_TIMEOUT, check=False
        )
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}", pytrace=False)
        return proc.stdout.strip()

    def buildah(self, *args: str) -> str:
        """``buildah`` with the private vfs storage."""
        return self.run(
            "buildah",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
            *args,
        )

    def bud(self, context: Path, containerfile: str, tag: str, *extra: str) -> str:
        """``buildah bud --layers`` one Containerfile; returns the image id."""
        (context / "Containerfile").write_text(containerfile)
        self.buildah(
            "bud",
            "--layers",
            "--isolation",
            "chroot",
            "--pull=never",
            "--timestamp",
            str(EPOCH),
            "--signature-policy",
            str(self.policy),
            *extra,
            "-f",
            str(context / "Containerfile"),
            "-t",
            tag,
            str(context),
        )
        return self.image_id(tag)

    def image_id(self, tag: str) -> str:
        """The image id (= config digest, hex) of a local image."""
        return (
            self.buildah("images", "--no-trunc", "--format", "{{.ID}}", tag)
            .splitlines()[0]
            .removeprefix("sha256:")
        )

    def skopeo_copy(self, src: str, dest: str, *extra: str) -> None:
        """``skopeo copy`` without a signature policy file (local transports only)."""
        self.run("skopeo", "--insecure-policy", "copy", "--quiet", *extra, src, dest)


def _write(path: Path, data: bytes, mode: int = 0o644) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return sha256_hex(data)


def _private_key(rng: random.Random) -> bytes:
    """A made-up PEM private key (random bytes, never a real key)."""
    import base64

    body = base64.encodebytes(rng.randbytes(600)).decode()
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}-----END OPENSSH PRIVATE KEY-----\n".encode()


def _make_context(base: Path, rng: random.Random, image: RealImages) -> Path:
    """The build context: a small rootfs of made-up files (no downloads)."""
    ctx = base / "context"
    rootfs = ctx / "rootfs"
    # A "static binary": ELF magic + header-ish bytes + incompressible body.
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + rng.randbytes(16 * 1024)
    image.contents["/usr/bin/tool"] = _write(rootfs / "usr/bin/tool", elf, 0o755)
    image.contents["/usr/bin/keep"] = _write(rootfs / "usr/bin/keep", b"\x7fELF" + rng.randbytes(2048), 0o755)
    image.contents["/opt/app/start.sh"] = _write(
        rootfs / "opt/app/start.sh", b'#!/bin/sh\nset -eu\nexec /usr/bin/tool --serve "$@"\n', 0o755
    )
    image.contents["/etc/motd"] = _write(rootfs / "etc/motd", b"Welcome to the evidence image.\n" * 20)
    image.contents["/root/.ssh/id_ed25519"] = _write(
        rootfs / "root/.ssh/id_ed25519", _private_key(rng), 0o600
    )
    image.contents["/usr/local/bin/run.sh"] = _write(
        ctx / "extra/run.sh", b'#!/bin/sh\necho running "$APP_MODE"\n', 0o755
    )
    return ctx


def _delete_layer(tools: Tools, base_tag: str, new_tag: str, image: RealImages, rng: random.Random) -> None:
    """Layer 2, with buildah's low-level commands: whiteouts, a shadowed file and a hidden setuid file."""
    ctr = tools.buildah("from", "--pull=never", "--signature-policy", str(tools.policy), base_tag)
    try:
        mnt = Path(tools.buildah("mount", ctr))
        for path in ("/usr/bin/tool", "/root/.ssh/id_ed25519"):
            image.deleted[path] = image.contents[path]
            (mnt / path.lstrip("/")).unlink()
        image.shadowed["/etc/motd"] = image.contents["/etc/motd"]
        new_motd = b"This system is monitored.\n"
        (mnt / "etc/motd").write_bytes(new_motd)
        image.setuid_path = "/usr/lib/.cache-helper"
        helper = mnt / image.setuid_path.lstrip("/")
        helper.parent.mkdir(parents=True, exist_ok=True)
        helper_bytes = b"\x7fELF\x02\x01\x01\x00" + rng.randbytes(1024)
        helper.write_bytes(helper_bytes)
        helper.chmod(0o4755)
        image.contents[image.setuid_path] = sha256_hex(helper_bytes)
        tools.buildah("umount", ctr)
        tools.buildah("config", "--created-by", "/bin/sh -c rm -f /usr/bin/tool /root/.ssh/id_ed25519", ctr)
        tools.buildah(
            "commit", "--timestamp", str(EPOCH), "--signature-policy", str(tools.policy), ctr, new_tag
        )
    finally:
        tools.run(
            "buildah",
            "--root",
            str(tools.root),
            "--runroot",
            str(tools.runroot),
            "--storage-driver",
            "vfs",
            "rm",
            ctr,
        )


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path) -> Path:
    """Overrides the Django evidence-store fixture of tests/conftest.py: these tests never touch Django."""
    return tmp_path / "store"


@pytest.fixture(scope="session")
def real_images(tmp_path_factory: pytest.TempPathFactory) -> RealImages:
    """Build the test image with buildah and write it in three formats with skopeo (a few seconds)."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    base = tmp_path_factory.mktemp("realtools")
    out = base / "out"
    out.mkdir()
    rng = random.Random(20240601)
    tools = Tools(base)
    image = RealImages(
        docker_archive=out / "image.docker.tar",
        oci_archive=out / "image.oci.tar",
        oci_zstd=out / "image-zstd",
        multi_arch=out / "multi.oci.tar",
        image_tag=TAG,
        oci_ref="lowerdir-realtools",
        config_digest="",
        diff_ids=[],
    )
    ctx = _make_context(base, rng, image)
    tools.bud(ctx, CONTAINERFILE, "localhost/lowerdir-stage:1")
    _delete_layer(tools, "localhost/lowerdir-stage:1", "localhost/lowerdir-stage:2", image, rng)
    top = base / "context-top"
    top.mkdir()
    image.contents["/srv/notes.txt"] = _write(top / "notes.txt", b"case notes: nothing to see here\n" * 50)
    image_id = tools.bud(top, CONTAINERFILE_TOP.format(base="localhost/lowerdir-stage:2"), TAG)
    image.config_digest = f"sha256:{image_id}"
    inspect = json.loads(tools.buildah("inspect", "--type", "image", TAG))
    image.diff_ids = list(inspect["OCIv1"]["rootfs"]["diff_ids"])

    src = f"{tools.store}{TAG}"
    tools.skopeo_copy(src, f"docker-archive:{image.docker_archive}:{TAG}")
    tools.skopeo_copy(src, f"oci-archive:{image.oci_archive}:{image.oci_ref}")
    tools.skopeo_copy(src, f"oci:{image.oci_zstd}:{image.oci_ref}", "--dest-compress-format", "zstd")

    # Multi-platform: the same Containerfile for arm64 (COPY only, so no emulator is needed).
    arm_tag = "localhost/lowerdir-realtools:arm64"
    arm_id = tools.bud(ctx, CONTAINERFILE, arm_tag, "--platform", "linux/arm64", "--no-cache")
    image.platform_configs = {"linux/amd64": image.config_digest, "linux/arm64": f"sha256:{arm_id}"}
    tools.buildah("manifest", "create", "localhost/lowerdir-list")
    for tag in (TAG, arm_tag):
        tools.buildah("manifest", "add", "localhost/lowerdir-list", f"containers-storage:{tag}")
    tools.buildah(
        "manifest",
        "push",
        "--all",
        "--signature-policy",
        str(tools.policy),
        "localhost/lowerdir-list",
        f"oci-archive:{image.multi_arch}",
    )
    shutil.rmtree(tools.root.parent, ignore_errors=True)  # the vfs store is big-ish; the outputs stay
    return image


def read_oci_archive(path: Path) -> dict[str, bytes]:
    """Small members of an oci-archive (index.json and JSON blobs), by name."""
    out: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and member.size < 64 * 1024:
                fh = tar.extractfile(member)
                assert fh is not None
                out[member.name.removeprefix("./")] = fh.read()
    return out
