"""Sigstore signature verification for scanned images, cosign-free (no Django). See docs/registry.md.

    from scanner.engine.signatures import SignaturePolicy
    report = scan("app.tar", options=ScanOptions(signatures=SignaturePolicy(
        identity="release@example.com", issuer="https://accounts.example.com")))

For each image, signatures for its manifest digest (or an index listing it) are looked for in the
source (referrers, the referrers tag, legacy ``.sig`` tags) and in ``policy.bundle_files``, verified,
and reported as findings:

- ``signature.verified`` (info): identity or key id, issuer, Rekor log index and time;
- ``signature.invalid`` (critical): a signature that does not verify, with the reason;
- ``signature.unverifiable`` (medium; high when signatures are required): a valid signature that
  cannot be tied to an expected signer because none is configured;
- ``signature.missing`` (high when required, else low): nothing signs this image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..limits import Limits
from ..model import Finding, ImageResult, ScanError, Severity
from ..sources import SourceSpec, open_source
from .discover import Artefact, claimed_subjects, find_artefacts, subjects_for
from .policy import SignaturePolicy, key_id
from .trust import Trust, TrustError, load_trust
from .verify import Outcome, verify_bundle, verify_legacy

__all__ = [
    "Outcome",
    "SignaturePolicy",
    "Trust",
    "TrustError",
    "check_images",
    "key_id",
    "load_trust",
    "verify_artefact",
]
MAX_BUNDLE_FILE = 4 * 1024 * 1024


def verify_artefact(art: Artefact, subjects: set[str], policy: SignaturePolicy, trust_loader) -> Outcome:
    if art.kind == "bundle":
        return verify_bundle(art.data, subjects, policy, trust_loader())
    return verify_legacy(art.data, art.annotations, subjects, policy, trust_loader)


def _bundle_files(policy: SignaturePolicy) -> list[Artefact]:
    out = []
    for path in policy.bundle_files:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_BUNDLE_FILE + 1)
        except OSError as exc:
            raise ScanError(f"cannot read the signature bundle {path}: {exc.strerror or exc}") from None
        if len(data) > MAX_BUNDLE_FILE:
            raise ScanError(f"the signature bundle {path} is over {MAX_BUNDLE_FILE} bytes")
        out.append(Artefact("bundle", "", data, where=f"bundle file {Path(path).name}"))
    return out


def _finding(
    rule: str, severity: Severity, title: str, detail: str, image: ImageResult, art_sha: str
) -> Finding:
    key = "\0".join([rule, image.manifest_digest, art_sha, title])
    return Finding(
        rule_id=rule,
        severity=severity,
        title=title,
        detail=detail,
        sha256=art_sha,
        fingerprint=hashlib.sha256(key.encode()).hexdigest(),
    )


def findings_for(
    image: ImageResult,
    subjects: set[str],
    artefacts: list[Artefact],
    policy: SignaturePolicy,
    trust_loader,
    others: set[str] = frozenset(),
) -> list[Finding]:  # type: ignore[assignment]
    """``others``: digests of the other images in the same source (their signatures are not this one's)."""
    out: list[Finding] = []
    signer = policy.identity or "any signer"
    for art in artefacts:
        claimed = claimed_subjects(art)
        if claimed and not claimed & subjects and claimed & others:
            continue  # another image's signature in the same source
        outcome = verify_artefact(art, subjects, policy, trust_loader)
        what = f"{outcome.kind} ({art.where})"
        if outcome.status == "verified":
            out.append(
                _finding(
                    "signature.verified",
                    Severity.INFO,
                    f"signature verified: {outcome.identity or outcome.key}",
                    f"{what} for {outcome.subject}: {outcome.describe()}.",
                    image,
                    art.sha256,
                )
            )
        elif outcome.status == "unverifiable":
            out.append(
                _finding(
                    "signature.unverifiable",
                    Severity.HIGH if policy.require else Severity.MEDIUM,
                    "signature found but not tied to an expected signer",
                    f"{what}: {outcome.reason}. {outcome.describe()}".strip(),
                    image,
                    art.sha256,
                )
            )
        else:
            facts = outcome.describe()
            out.append(
                _finding(
                    "signature.invalid",
                    Severity.CRITICAL,
                    "signature does not verify",
                    f"{what}: {outcome.reason}" + (f" (claimed: {facts})" if facts else ""),
                    image,
                    art.sha256,
                )
            )
    if not out:
        names = (
            ", ".join(sorted(subjects)) or "(no manifest digest: a legacy docker-archive cannot be checked)"
        )
        out.append(
            _finding(
                "signature.missing",
                Severity.HIGH if policy.require else Severity.LOW,
                "no signature for the image",
                f"no Sigstore or cosign signature was found for {names} (expected signer: {signer}"
                f"{', issuer ' + policy.issuer if policy.issuer else ''}).",
                image,
                "",
            )
        )
    return out


def check_images(
    spec: SourceSpec | str, images: list[ImageResult], policy: SignaturePolicy, limits: Limits
) -> None:
    """Append signature findings to each image (in place)."""
    trust: list[Trust] = []

    def trust_loader() -> Trust:
        if not trust:
            trust.append(load_trust(policy.trusted_root))
        return trust[0]

    extra = _bundle_files(policy)
    with open_source(spec, limits) as src:
        artefacts = find_artefacts(src, limits) + extra
        subjects = [subjects_for(src, image.manifest_digest, limits) for image in images]
        for i, image in enumerate(images):
            others = set().union(*(s for j, s in enumerate(subjects) if j != i)) - subjects[i]
            image.findings.extend(findings_for(image, subjects[i], artefacts, policy, trust_loader, others))
