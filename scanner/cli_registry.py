"""CLI flags for registry pulls and signature verification (``python -m scanner scan``). No Django.

Each flag falls back to the environment variable the web app uses, so one configuration serves both.
"""

from __future__ import annotations

import argparse
import os
import sys

from scanner.engine import ScanError, ScanOptions
from scanner.engine.registry.netpolicy import NetPolicy
from scanner.engine.registry.options import Credentials, PullOptions
from scanner.engine.registry.source import RegistryConfig
from scanner.engine.signatures import SignaturePolicy


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("registry (docker://host/repo[:tag][@digest] sources)")
    g.add_argument(
        "--registry-allow",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allowed registry hosts (default: $LOWERDIR_REGISTRY_ALLOWLIST; none = any public host)",
    )
    g.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="hosts that may be reached over plain HTTP or on private/loopback addresses "
        "(default: $LOWERDIR_REGISTRY_INSECURE)",
    )
    g.add_argument(
        "--registry-user",
        default="",
        help="user name for the registry; the password is read "
        "from $LOWERDIR_REGISTRY_PASSWORD (never from the command line)",
    )
    g.add_argument("--save-pulled", default="", metavar="PATH", help="also keep the pulled OCI archive here")
    g = p.add_argument_group("signatures (Sigstore / cosign, verified offline)")
    g.add_argument(
        "--verify-signatures",
        action="store_true",
        help="check signatures (on by default for docker:// sources and when a flag below is given)",
    )
    g.add_argument(
        "--identity", default="", help="expected signer identity (default: $LOWERDIR_SIGNATURE_IDENTITY)"
    )
    g.add_argument("--issuer", default="", help="expected OIDC issuer (default: $LOWERDIR_SIGNATURE_ISSUER)")
    g.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PEM",
        help="cosign public key for key-based signatures (default: $LOWERDIR_COSIGN_PUBLIC_KEY)",
    )
    g.add_argument(
        "--trusted-root",
        default="",
        metavar="PATH",
        help="trusted_root.json of a private Sigstore (default: $LOWERDIR_SIGSTORE_TRUSTED_ROOT, "
        "else sigstore's embedded production root)",
    )
    g.add_argument(
        "--require-signature",
        action="store_true",
        help="a missing signature is high instead of low (default: $LOWERDIR_REQUIRE_SIGNATURE)",
    )
    g.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="FILE",
        help="a Sigstore bundle file for the image (cosign --bundle / --new-bundle-format output)",
    )


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _print_pulled(result) -> None:
    sys.stderr.write(f"{result.custody_text()}\n")
    for line in result.mismatches:
        sys.stderr.write(f"warning: {line}\n")


def apply(args: argparse.Namespace, options: ScanOptions) -> None:
    """Fill ``options.registry`` and ``options.signatures`` from the flags and the environment."""
    env = os.environ
    creds = {}
    if args.registry_user:
        password = env.get("LOWERDIR_REGISTRY_PASSWORD", "")
        if not password:
            raise ScanError("--registry-user needs the password in $LOWERDIR_REGISTRY_PASSWORD")
        registry = args.source.removeprefix("docker://").split("/", 1)[0]
        creds[registry] = Credentials(args.registry_user, password)
    policy = NetPolicy.from_lists(
        args.registry_allow or _csv(env.get("LOWERDIR_REGISTRY_ALLOWLIST", "")),
        args.insecure_registry or _csv(env.get("LOWERDIR_REGISTRY_INSECURE", "")),
    )
    options.registry = RegistryConfig(
        policy=policy,
        pull=PullOptions(credentials=creds),
        keep_archive=args.save_pulled,
        on_pulled=_print_pulled,
    )
    keys = args.key or _csv(env.get("LOWERDIR_COSIGN_PUBLIC_KEY", ""))
    identity = args.identity or env.get("LOWERDIR_SIGNATURE_IDENTITY", "")
    issuer = args.issuer or env.get("LOWERDIR_SIGNATURE_ISSUER", "")
    trusted_root = args.trusted_root or env.get("LOWERDIR_SIGSTORE_TRUSTED_ROOT", "")
    require = args.require_signature or _env_bool("LOWERDIR_REQUIRE_SIGNATURE")
    wanted = (
        args.verify_signatures
        or args.source.startswith("docker://")
        or args.bundle
        or any((args.key, args.identity, args.issuer, args.trusted_root, args.require_signature))
    )
    if not wanted:
        return
    pems = []
    for path in keys:
        try:
            with open(path, "rb") as fh:
                pems.append(fh.read(64 * 1024))
        except OSError as exc:
            raise ScanError(f"cannot read the public key {path}: {exc.strerror or exc}") from None
    options.signatures = SignaturePolicy(
        identity=identity,
        issuer=issuer,
        public_keys=pems,
        trusted_root=trusted_root,
        require=require,
        bundle_files=list(args.bundle),
    )
