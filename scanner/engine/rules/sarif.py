"""A ScanReport as SARIF 2.1.0: one run per scanned image, one rule entry per rule id of the rule pack,
one result per finding, located at ``layer/<index>/<path>`` (``config`` for config-level findings)."""

from __future__ import annotations

from urllib.parse import quote

from ..model import Finding, ImageResult, ScanReport, Severity
from ..report import sorted_findings
from .loader import Rule, RuleSet

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads this number: >= 9 critical, 7-8.9 high, 4-6.9 medium, 0.1-3.9 low
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def location_uri(finding: Finding) -> str:
    if finding.layer_index is None:
        return "config"
    base = f"layer/{finding.layer_index}"
    if not finding.path:
        return base
    return base + "/" + quote(finding.path.lstrip("/").encode("utf-8", "surrogateescape"), safe="/._-~+@")


def _rule_entry(rule: Rule) -> dict:
    entry = {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.replace("-", ".").split(".")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": rule.remediation, "markdown": f"**Remediation.** {rule.remediation}"},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "tags": ["security", rule.id.split(".", 1)[0]],
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "lowerdir-severity": str(rule.severity),
        },
    }
    if rule.references:
        entry["helpUri"] = rule.references[0]
    if rule.severity_note:
        entry["properties"]["severity-note"] = rule.severity_note
    return entry


def _result(f: Finding, rule_index: dict[str, int], image: ImageResult) -> dict:
    text = f.title + (f": {f.detail}" if f.detail else "")
    result: dict = {
        "ruleId": f.rule_id,
        "level": LEVEL[f.severity],
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": location_uri(f), "uriBaseId": "IMAGE"}},
                "logicalLocations": [
                    {
                        "name": f.path or "config",
                        "kind": "layer" if f.layer_index is not None else "image",
                        "fullyQualifiedName": location_uri(f),
                    }
                ],
            }
        ],
        "partialFingerprints": {"lowerdirFingerprint/v1": f.fingerprint},
        "properties": {
            "severity": str(f.severity),
            "security-severity": SECURITY_SEVERITY[f.severity],
            "layer_index": f.layer_index,
            "layer_digest": f.layer_digest,
            "sha256": f.sha256,
            "excerpt": f.excerpt,
            "hidden_layer_index": f.hidden_layer_index,
            "related": list(f.related),
            "remediation": f.remediation,
            "image_config_digest": image.config_digest,
        },
    }
    if f.rule_id in rule_index:
        result["ruleIndex"] = rule_index[f.rule_id]
    if f.suppressed:
        result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": f.suppression}]
    return result


def to_sarif(report: ScanReport, ruleset: RuleSet, *, version: str = "") -> dict:
    rules = sorted(ruleset.rules.values(), key=lambda r: r.id)
    known = {r.id for r in rules}
    extra = sorted({f.rule_id for image in report.images for f in image.findings} - known)
    entries = [_rule_entry(r) for r in rules]
    for rid in extra:  # a finding of a rule the pack does not describe (should not happen): still listed once
        entries.append({"id": rid, "shortDescription": {"text": rid}})
    index = {entry["id"]: i for i, entry in enumerate(entries)}
    runs = []
    for image in report.images or []:
        runs.append(
            {
                "tool": {
                    "driver": {
                        "name": "lowerdir",
                        "version": version or "0",
                        "rules": entries,
                        "properties": {"ruleset": ruleset.version},
                    }
                },
                "originalUriBaseIds": {
                    "IMAGE": {
                        "description": {
                            "text": f"the image {image.manifest_digest or image.config_digest}: "
                            "layer/<index>/<path>"
                        }
                    }
                },
                "automationDetails": {"id": f"lowerdir/{image.config_digest}"},
                "results": [_result(f, index, image) for f in sorted_findings(image.findings)],
                "properties": {
                    "source": report.source.path,
                    "source_format": report.source.format,
                    "source_sha256": report.source.sha256,
                    "manifest_digest": image.manifest_digest,
                    "config_digest": image.config_digest,
                    "repo_tags": list(image.repo_tags),
                    "platform": image.platform,
                },
            }
        )
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": runs}
