"""Shared helpers for the case-workspace tests (tests/test_workspace*.py) and the browser tests.

Import the fixtures you need: ``from tests.ui.scenario import team, demo, scanned``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from cases.models import CaseMembership, Role
from scanner.models import Image, ScanRun, ScanStatus
from tests.conftest import upload_file
from tests.imagefactory import Entry, build_image

HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass
class Team:
    lead: object
    investigator: object
    viewer: object
    outsider: object

    def client(self, who: str) -> Client:
        client = Client()
        client.force_login(getattr(self, who))
        return client


def add_team(case, make_user, alice, mallory) -> Team:
    bob = make_user("bob")
    victor = make_user("victor")
    CaseMembership.objects.create(case=case, user=bob, role=Role.INVESTIGATOR)
    CaseMembership.objects.create(case=case, user=victor, role=Role.VIEWER)
    return Team(lead=alice, investigator=bob, viewer=victor, outsider=mallory)


@pytest.fixture
def demo(alice):
    """A demo case with a poisoned image, a graveyard, findings, and attacker-style names everywhere."""
    from cases.demo import build_demo_case

    return build_demo_case(alice, findings=60, files=400, hostile=True)


@pytest.fixture
def team(demo, make_user, alice, mallory) -> Team:
    return add_team(demo, make_user, alice, mallory)


def hostile_image(path, fmt: str = "docker-archive"):
    """A real three-layer archive: a setuid miner hidden by a whiteout, a hostile name, secrets in Env."""
    return build_image(
        path,
        [
            [Entry("etc/", type="dir", mode=0o755), ("etc/os-release", b"ID=debian\n")],
            [
                Entry("usr/bin/", type="dir", mode=0o755),
                Entry("usr/bin/.hidden_miner", b"\x7fELF" + b"\0" * 60, mode=0o4755),
                Entry("srv/", type="dir", mode=0o755),
                Entry(f"srv/{HOSTILE}.sh", b"#!/bin/sh\necho pwned\n", mode=0o755),
            ],
            [Entry("usr/bin/.wh..hidden_miner")],
        ],
        fmt=fmt,
        repo_tags=["victim/app:latest"],
        config={
            "User": "root",
            "Env": ["PATH=/usr/bin", "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "DB_PASSWORD=hunter2-prod"],
        },
    )


def scan_in_process(case, user, archive) -> Image:
    """Receive ``archive`` as evidence and scan it with the real engine in this process (no worker)."""
    from cases.intake import receive_evidence
    from scanner import engine
    from scanner.persist import store_report

    uploaded = upload_file(archive)
    uploaded.sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    evidence = receive_evidence(case=case, uploaded=uploaded, user=user)
    run = ScanRun.objects.get(evidence=evidence)
    report = engine.scan(default_storage.path(evidence.storage_key))
    store_report(run, report)
    now = timezone.now()
    ScanRun.objects.filter(pk=run.pk).update(
        status=ScanStatus.SUCCEEDED, progress=1.0, attempt=1, started_at=now, finished_at=now
    )
    return Image.objects.get(scan=run)


@pytest.fixture
def scanned(case, alice, tmp_path) -> Image:
    return scan_in_process(case, alice, hostile_image(tmp_path / "victim.tar").path)
