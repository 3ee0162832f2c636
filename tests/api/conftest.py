"""API fixtures: a team with every role (and an outsider), token clients, and a case with evidence, a
scanned image (three layers, files, a graveyard), findings, a timeline entry, a note and a checklist."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.intake import receive_evidence
from cases.models import Case, CaseMembership, Evidence, Role
from cases.workspace import actions
from scanner.models import FileRecord, Finding, Image, Layer, ScanRun, ScanStatus

MINER = hashlib.sha256(b"xmrig miner").hexdigest()
ROLES = ("lead", "investigator", "viewer", "outsider")


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle counters live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@dataclass
class Team:
    users: dict
    clients: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.__dict__["users"][name]
        except KeyError:
            raise AttributeError(name) from None

    def client(self, role: str) -> APIClient:
        if role not in self.clients:
            self.clients[role] = token_client(self.users[role])
        return self.clients[role]


@pytest.fixture
def team(make_user) -> Team:
    return Team({role: make_user(f"{role}-user") for role in ROLES})


@dataclass
class World:
    case: Case
    evidence: Evidence
    run: ScanRun
    image: Image
    layers: list
    findings: list
    files: list
    extra: dict = field(default_factory=dict)


def add_members(case: Case, team: Team) -> None:
    CaseMembership.objects.create(case=case, user=team.investigator, role=Role.INVESTIGATOR)
    CaseMembership.objects.create(case=case, user=team.viewer, role=Role.VIEWER)


def stored_evidence(case: Case, user, data: bytes = b"an image archive", name: str = "image.tar") -> Evidence:
    """Evidence with real bytes in the (per-test) store, so re-verification can read them."""
    uploaded = SimpleUploadedFile(name, data, content_type="application/x-tar")
    uploaded.sha256 = hashlib.sha256(data).hexdigest()
    return receive_evidence(case=case, uploaded=uploaded, user=user)


def scanned_image(
    case: Case, evidence: Evidence, *, files: int = 6, findings: int = 4, tag: str = "a"
) -> World:
    """A succeeded scan of ``evidence``: 3 layers, ``files`` records plus a hidden miner, findings."""
    run = ScanRun.objects.filter(evidence=evidence).first() or ScanRun.objects.create(evidence=evidence)
    ScanRun.objects.filter(pk=run.pk).update(status=ScanStatus.SUCCEEDED, progress=1.0)
    run.refresh_from_db()
    image = Image.objects.create(
        scan=run,
        manifest_digest="sha256:" + hashlib.sha256(f"m{tag}{evidence.pk}".encode()).hexdigest(),
        config_digest="sha256:" + hashlib.sha256(f"c{tag}{evidence.pk}".encode()).hexdigest(),
        repo_tags=[f"victim/{tag}:latest"],
        platform="linux/amd64",
        user="root",
        config={
            "config": {
                "User": "root",
                "Env": ["PATH=/usr/bin", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"],
            }
        },
    )
    layers = [
        Layer.objects.create(
            image=image,
            index=n,
            digest="sha256:" + hashlib.sha256(f"l{tag}{n}{evidence.pk}".encode()).hexdigest(),
        )
        for n in range(3)
    ]
    rows = [
        FileRecord(image=image, layer=layers[0], path="/etc/", type="dir", change="added"),
        FileRecord(
            image=image,
            layer=layers[0],
            path="/etc/os-release",
            type="file",
            size=10,
            sha256=hashlib.sha256(b"os").hexdigest(),
            change="added",
        ),
        FileRecord(
            image=image,
            layer=layers[1],
            path="/usr/bin/.hidden_miner",
            type="file",
            size=64,
            mode=0o4755,
            sha256=MINER,
            flags="setuid elf hidden",
            change="added",
            visible=False,
            hidden_by=2,
            hidden_how="whiteout",
        ),
        FileRecord(
            image=image,
            layer=layers[2],
            path="/usr/bin/.hidden_miner",
            type="file",
            change="deleted",
            visible=False,
        ),
    ]
    rows += [
        FileRecord(
            image=image,
            layer=layers[n % 3],
            path=f"/usr/lib/f{n:05d}",
            type="file",
            size=n,
            sha256=hashlib.sha256(f"f{n}".encode()).hexdigest(),
            change="added",
        )
        for n in range(files)
    ]
    records = FileRecord.objects.bulk_create(rows)
    severities = ["critical", "high", "medium", "low", "info"]
    found = Finding.objects.bulk_create(
        [
            Finding(
                case=case,
                scan=run,
                image=image,
                layer=layers[1],
                rule_id="malware.yara",
                severity="critical",
                title="Miner",
                path="/usr/bin/.hidden_miner",
                sha256=MINER,
                fingerprint=f"miner{tag}",
            ),
            *[
                Finding(
                    case=case,
                    scan=run,
                    image=image,
                    layer=layers[n % 3],
                    rule_id=f"rule.{severities[n % 5]}",
                    severity=severities[n % 5],
                    title=f"finding {n}",
                    path=f"/usr/lib/f{n:05d}",
                    fingerprint=f"{tag}{n}",
                )
                for n in range(findings)
            ],
        ]
    )
    return World(
        case=case, evidence=evidence, run=run, image=image, layers=layers, findings=found, files=records
    )


@pytest.fixture
def world(team) -> World:
    case = Case.open_case(lead=team.lead, title="Miner in prod", summary="latest was the attacker's")
    add_members(case, team)
    evidence = stored_evidence(case, team.lead)
    built = scanned_image(case, evidence)
    built.extra["entry"] = actions.add_timeline_entry(
        case, team.lead, occurred_at=case.created_at, title="Alert fired", findings=built.findings[:1]
    )
    built.extra["note"] = actions.save_note(case, team.lead, title="First look", body="*miner*")
    built.extra["checklist"] = actions.add_checklist(case, team.lead, "ci-runner-wipe")
    from cases.postmortem import exports

    built.extra["export"] = exports.run_inline(exports.request_export(case, team.lead, "md"))[0]
    return built
