"""``python -m scanner``: scan an image archive, list its platforms, recover one file. No Django.

Exit codes (DESIGN §4): 0 scanned and nothing at or above ``--fail-on``; 1 findings at or above it;
2 could not scan, with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable

from scanner import cli_registry, submit
from scanner.engine import ScanError, ScanOptions, list_platforms, open_layer_file, scan
from scanner.engine.model import Severity
from scanner.engine.report import render_table, to_dict
from scanner.engine.rules import load_ruleset

SEVERITIES = [s.value for s in Severity]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scanner", description="Lowerdir image scanner")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scan", help="scan an image archive or OCI layout")
    p.add_argument("source", help="PATH, docker-archive:PATH, oci-archive:PATH, oci:DIR[:REF] or "
                   "docker://HOST/REPO[:TAG][@DIGEST]")
    p.add_argument("--format", choices=["table", "json", "sarif", "cyclonedx"], default="table",
                   help="table (people), json (lowerdir.scan/v1), sarif (SARIF 2.1.0), cyclonedx (SBOM)")
    p.add_argument("--fail-on", choices=SEVERITIES, default="high",
                   help="exit 1 when a finding (not suppressed) is at or above this severity (default: high)")
    p.add_argument("--rules", action="append", default=[], metavar="DIR",
                   help="an extra rule folder (YAML, .yar, suppressions); repeatable; "
                   "also $LOWERDIR_RULES_DIRS")
    p.add_argument("--no-rules", action="store_true",
                   help="verify and list the image only: integrity findings, no rule pack")
    p.add_argument("--reference", default="", metavar="REF",
                   help="the reference the image was pulled by (repo:tag or repo@sha256:...)")
    p.add_argument("--platform", default=None, help="os/arch[/variant] to scan (default linux/amd64)")
    p.add_argument("--all-platforms", action="store_true", help="scan every platform of an index")
    p.add_argument("--jobs", type=int, default=1, help="layers scanned in parallel processes")
    p.add_argument("--no-source-hash", action="store_true", help="skip the SHA-256 of the source file")
    cli_registry.add_arguments(p)
    p = sub.add_parser("cat", help="write one file's bytes from one layer to stdout")
    p.add_argument("source")
    p.add_argument("--layer", type=int, required=True, help="layer index (0 = the base layer)")
    p.add_argument("--platform", default="linux/amd64")
    p.add_argument("path", help="the file's path in that layer, e.g. /usr/bin/.hidden_miner")
    p = sub.add_parser("rules", help="load and list the rule pack (exit 2 naming the file and line of a "
                       "broken rule)")
    p.add_argument("--rules", action="append", default=[], metavar="DIR", help="an extra rule folder")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p = sub.add_parser("platforms", help="list the images and platforms in a source")
    p.add_argument("source")
    p.add_argument("--format", choices=["table", "json"], default="table")
    submit.add_parser(sub)
    return parser


def _progress_bar() -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal; otherwise nothing."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    # auto_refresh=False: no refresh thread, so layer worker processes are forked from a single thread
    bar = Progress("scanning", BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=Console(file=sys.stderr), transient=True, auto_refresh=False)
    task = bar.add_task("scan", total=None)
    state = {"last": 0.0, "started": False}

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if now - state["last"] < 0.1 and done < total:
            return
        state["last"] = now
        if not state["started"]:
            bar.start()
            state["started"] = True
        bar.update(task, completed=done, total=total)
        bar.refresh()

    def stop() -> None:
        if state["started"]:
            bar.stop()

    return update, stop


def _scan(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise ScanError("--jobs must be at least 1")
    ruleset = None if args.no_rules else load_ruleset(args.rules)
    options = ScanOptions(jobs=args.jobs, all_platforms=args.all_platforms,
                          hash_source=not args.no_source_hash, rules=not args.no_rules, ruleset=ruleset,
                          reference=args.reference)
    if args.platform:
        options.platform = args.platform
    cli_registry.apply(args, options)
    progress, stop = _progress_bar()
    try:
        report = scan(args.source, options=options, progress=progress)
    finally:
        stop()
    if args.format == "json":
        json.dump(to_dict(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "sarif":
        from scanner.engine import __version__
        from scanner.engine.rules.loader import RuleSet
        from scanner.engine.rules.sarif import to_sarif

        json.dump(to_sarif(report, ruleset or RuleSet(), version=__version__), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "cyclonedx":
        from scanner.engine.rules.sbom import to_cyclonedx

        sys.stdout.write(to_cyclonedx(report) + "\n")
    else:
        color = sys.stdout.isatty()
        width = max(shutil.get_terminal_size((120, 24)).columns, 60) if color else 120
        sys.stdout.write(render_table(report, color=color, width=width))
    threshold = Severity(args.fail_on).rank
    failing = any(f.severity.rank >= threshold and not f.suppressed
                  for image in report.images for f in image.findings)
    return 1 if failing else 0


def _rules(args: argparse.Namespace) -> int:
    ruleset = load_ruleset(args.rules)
    rules = sorted(ruleset.rules.values(), key=lambda r: r.id)
    if args.format == "json":
        json.dump({"version": ruleset.version, "files": ruleset.files,
                   "rules": [{"id": r.id, "severity": str(ruleset.severity(r.id, r.severity)),
                              "title": r.title, "source": r.source, "kind": r.kind} for r in rules],
                   "secret_patterns": sorted(ruleset.secret_patterns),
                   "suppressions": [s.describe() for s in ruleset.suppressions]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in rules:
        sev = ruleset.severity(r.id, r.severity)
        sys.stdout.write(f"{r.id:28}  {str(sev):8}  {r.title}\n")
    sys.stdout.write(f"\n{len(rules)} rules, {len(ruleset.secret_patterns)} secret patterns, "
                     f"{len(ruleset.suppressions)} suppressions from {len(ruleset.files)} files "
                     f"(rule pack {ruleset.version})\n")
    for sup in ruleset.suppressions:
        sys.stdout.write(f"  {sup.describe()}\n")
    return 0


def _cat(args: argparse.Namespace) -> int:
    chunks = open_layer_file(args.source, args.layer, args.path, platform=args.platform)
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
    out.flush()
    return 0


def _platforms(args: argparse.Namespace) -> int:
    images = list_platforms(args.source)
    if args.format == "json":
        json.dump(images, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for image in images:
        tags = ", ".join(image["repo_tags"]) or "(untagged)"
        sys.stdout.write(f"{image['platform'] or '?':20}  {image['manifest_digest'] or '-':71}  "
                         f"{image['layers']:>3} layers  {tags}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {"scan": _scan, "cat": _cat, "platforms": _platforms, "rules": _rules,
               "submit": submit.main}[args.command]
    try:
        return command(args)
    except ScanError as exc:
        message = " ".join(str(exc).split()) or "the source could not be scanned"
        sys.stderr.write(f"error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 2
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line, no traceback (set LOWERDIR_DEBUG=1 to see it)
        if os.environ.get("LOWERDIR_DEBUG"):
            raise
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
