"""End to end: upload through the API, a real worker scans, results land on the case page.

Each test runs a real Celery worker process against the configured broker; nothing is mocked.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from scanner.models import FileRecord, Finding, Image, Layer, ScanRun, ScanStatus
from tests.conftest import upload_file
from tests.imagefactory import Entry, build_image, write_archive

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def upload(api, case, path: Path) -> dict:
    response = api.post(f"/api/cases/{case.pk}/evidence/", {"file": upload_file(path)}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def wait_done(api, evidence_id: int, worker, timeout: float = 120) -> dict:
    def done():
        scan = api.get(f"/api/evidence/{evidence_id}/").json()["scan"]
        return scan if scan["status"] in ("succeeded", "failed") else None

    try:
        return wait_for(done, timeout=timeout, interval=0.2, what="the scan to finish")
    except AssertionError:
        raise AssertionError("scan did not finish; worker log:\n" + worker.output()) from None


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_upload_scan_and_case_page(fmt, start_worker, api, web, case, tmp_path):
    image = build_image(
        tmp_path / "img.tar",
        [
            [Entry("etc/", type="dir", mode=0o755), ("etc/hostname", b"victim\n")],
            [
                Entry("usr/bin/", type="dir", mode=0o755),
                Entry("usr/bin/.hidden_miner", b"\x7fELF" + bytes(60), mode=0o4755),
            ],
            [Entry("usr/bin/.wh..hidden_miner")],
        ],
        fmt=fmt,
        repo_tags=["victim/app:latest"],
        config={"User": "root"},
    )
    worker = start_worker()
    evidence = upload(api, case, image.path)
    scan = wait_done(api, evidence["id"], worker)
    assert scan["status"] == "succeeded", scan
    assert scan["progress"] == 1.0

    stored = Image.objects.get(scan__evidence_id=evidence["id"])
    if image.manifest_digest:
        assert stored.manifest_digest == image.manifest_digest
    assert stored.config_digest == image.config_digest
    layers = list(Layer.objects.filter(image=stored).order_by("index"))
    assert [layer.digest for layer in layers] == image.layer_digests
    assert [layer.diff_id for layer in layers] == image.diff_ids
    miner = FileRecord.objects.get(image=stored, path="/usr/bin/.hidden_miner", change="added")
    assert miner.visible is False and miner.hidden_by == 2  # deleted by the whiteout in layer 2, still there

    html = web.get(case.get_absolute_url()).content.decode()
    assert stored.config_digest in html
    for layer in layers:
        assert layer.digest in html and layer.diff_id in html
    assert "victim/app:latest" in html


def test_tampered_layer_is_a_finding_not_a_failure(start_worker, api, case, tmp_path):
    from tests.imagefactory import compress, layer_tar, tamper

    image = build_image(tmp_path / "img.tar", [[("a.txt", b"one")], [("b.txt", b"two")]], fmt="oci-archive")
    tamper(image, image.layer_digests[1], compress(layer_tar([("b.txt", b"evil")]), "gzip"))
    worker = start_worker()
    evidence = upload(api, case, image.path)
    scan = wait_done(api, evidence["id"], worker)
    assert scan["status"] == "succeeded", scan
    findings = list(
        Finding.objects.filter(scan__evidence_id=evidence["id"], rule_id="integrity.digest-mismatch")
    )
    assert findings  # the blob digest and the diff_id both disagree: one finding each
    assert {(f.severity, f.layer.index, f.case_id) for f in findings} == {("critical", 1, case.pk)}
    assert Layer.objects.get(image__scan__evidence_id=evidence["id"], index=1).trusted is False
    assert Layer.objects.get(image__scan__evidence_id=evidence["id"], index=0).trusted is True


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_bad_inputs_fail_readably(start_worker, api, case, tmp_path):
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_bytes(b"just some notes, not an image\n" * 100)

    good = build_image(tmp_path / "good.tar", [[("a.txt", b"x" * 50_000)]])
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.path.read_bytes()[: good.path.stat().st_size // 2])

    escaping = tmp_path / "escape.tar"
    manifest = [{"Config": "config.json", "RepoTags": ["x:1"], "Layers": ["../../etc/passwd"]}]
    escaping.write_bytes(
        _tar_bytes(
            {
                "manifest.json": json.dumps(manifest).encode(),
                "config.json": b'{"rootfs": {"type": "layers", "diff_ids": []}}',
            }
        )
    )
    assert write_archive  # the factory writes well-formed archives; these three are hand-made on purpose

    worker = start_worker()
    results = {}
    for path in (not_an_image, truncated, escaping):
        evidence = upload(api, case, path)
        results[path.name] = wait_done(api, evidence["id"], worker)
    for name, scan in results.items():
        assert scan["status"] == "failed", (name, scan)
        assert scan["error"] and "\n" not in scan["error"] and "Traceback" not in scan["error"], (name, scan)
    assert "outside" in results["escape.tar"]["error"] or "passwd" in results["escape.tar"]["error"]
    assert not Image.objects.exists()


def test_killed_worker_loses_nothing(start_worker, api, case, tmp_path):
    """SIGKILL the worker mid-scan; a new worker plus the sweeper finish it once, with no duplicate rows."""
    layers = [
        [Entry(f"data/{n}/", type="dir", mode=0o755)]
        + [(f"data/{n}/file-{i:05d}.txt", f"{n}-{i}\n".encode()) for i in range(15_000)]
        for n in range(4)
    ]
    image = build_image(tmp_path / "many.tar", layers, fmt="oci-archive")
    expected_records = sum(len(layer) for layer in layers)

    first = start_worker()
    evidence = upload(api, case, image.path)
    run = ScanRun.objects.get(evidence_id=evidence["id"])
    wait_for(
        lambda: ScanRun.objects.filter(pk=run.pk, status=ScanStatus.RUNNING).exists(),
        timeout=60,
        interval=0.01,
        what="the scan to start",
    )
    first.kill()
    run.refresh_from_db()
    assert run.status == ScanStatus.RUNNING, "the scan finished before the kill: the test image is too small"
    assert run.attempt == 1

    second = start_worker(
        beat=True, extra_env={"LOWERDIR_SWEEP_INTERVAL": "1", "LOWERDIR_SCAN_STALE_AFTER": "3"}
    )
    scan = wait_done(api, evidence["id"], second, timeout=180)
    assert scan["status"] == "succeeded", scan
    run.refresh_from_db()
    assert run.attempt == 2
    assert Image.objects.filter(scan=run).count() == 1
    assert Layer.objects.filter(image__scan=run).count() == 4
    assert FileRecord.objects.filter(image__scan=run).count() == expected_records
    assert "re-queueing scan" in second.output() or "re-queueing scan" in first.output()
