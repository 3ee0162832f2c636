"""``python -m scanner submit``: hand an image archive to a Lowerdir server from a CI job, wait for its
scan, print the findings, and exit like ``scan`` (0 nothing at or above ``--fail-on``, 1 findings at or
above it, 2 could not submit or the scan failed, with one line on stderr).

No Django: it talks to the REST API (docs/api.md) with httpx. The upload is streamed from disk (multi-GB
is fine) with a progress bar when stderr is a terminal; the scan is polled with backoff. ``--format json``
prints the ``lowerdir.scan/v1`` document of ``scan --format json`` (plus a ``submission`` key: the
server, case, evidence and scan), ``sarif`` the same SARIF 2.1.0 as ``scan --format sarif`` (built by the
engine's writer from the findings the server stored), ``table`` a summary for people.

    python -m scanner submit --server https://lowerdir.example --token "$LOWERDIR_TOKEN" \\
        --case INC-2026-0042 image.tar --fail-on high --format sarif > lowerdir.sarif
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SEVERITIES = ["critical", "high", "medium", "low", "info"]
RANK = {name: len(SEVERITIES) - n for n, name in enumerate(SEVERITIES)}
PAGE = 500


class SubmitError(Exception):
    """Could not submit or the scan failed: one readable line, exit 2."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "submit",
        help="upload an image archive to a Lowerdir server, wait for its scan, print the findings (for CI)",
    )
    p.add_argument("image", help="the image archive (docker save / OCI archive)")
    p.add_argument(
        "--server",
        default=os.environ.get("LOWERDIR_SERVER", ""),
        help="the server's base URL (also $LOWERDIR_SERVER)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("LOWERDIR_TOKEN", ""),
        help="an API token (also $LOWERDIR_TOKEN; prefer the variable: arguments show in ps)",
    )
    p.add_argument("--case", required=True, metavar="KEY", help="the case key, e.g. INC-2026-0042")
    p.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="high",
        help="exit 1 when a finding (not suppressed) is at or above this severity (default: high)",
    )
    p.add_argument("--format", choices=["table", "json", "sarif"], default="table")
    p.add_argument("--description", default="", help="a note kept with the evidence (e.g. the CI job URL)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the scan (default 3600)")


class _Counting:
    """A file wrapper that reports how many bytes httpx has read (for the progress bar)."""

    def __init__(self, handle, callback) -> None:
        self.handle, self.callback, self.sent = handle, callback, 0

    def fileno(self) -> int:  # httpx sizes the part (Content-Length) from the real file
        return self.handle.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.handle.seek(offset, whence)
        self.sent = position
        return position

    def tell(self) -> int:
        return self.handle.tell()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.sent += len(chunk)
        self.callback(self.sent)
        return chunk


class _Progress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str, total: float | None, *, bytes_: bool) -> None:
        self.bar = None
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = [label, BarColumn()]
        columns += [DownloadColumn(), TransferSpeedColumn()] if bytes_ else [TaskProgressColumn()]
        self.bar = Progress(*columns, TimeRemainingColumn(), console=Console(file=sys.stderr), transient=True)
        self.task = self.bar.add_task(label, total=total)
        self.bar.start()

    def update(self, done: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class Client:
    def __init__(self, server: str, token: str) -> None:
        import httpx

        if not server.startswith(("http://", "https://")):
            raise SubmitError("--server must be an http:// or https:// URL")
        if not token:
            raise SubmitError("no token: give --token or set LOWERDIR_TOKEN")
        self.server = server.rstrip("/")
        self.http = httpx.Client(
            base_url=self.server,
            headers={
                "Authorization": f"Token {token}",
                "Accept": "application/json",
                "User-Agent": "lowerdir-submit",
            },
            timeout=httpx.Timeout(60.0, read=900.0, write=900.0),
            follow_redirects=False,
        )

    def request(self, method: str, url: str, **kwargs) -> dict:
        import httpx

        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise SubmitError(f"{self.server}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", "")
            except ValueError:
                detail = response.text[:200]
            hint = {
                401: " (check the token)",
                404: " (no such case, or you are not a member)",
                403: " (your role on the case does not allow it)",
            }.get(response.status_code, "")
            raise SubmitError(f"{method} {url}: {response.status_code} {' '.join(str(detail).split())}{hint}")
        try:
            return response.json()
        except ValueError:
            raise SubmitError(f"{method} {url}: the server did not answer with JSON") from None

    def pages(self, url: str, params: dict) -> list[dict]:
        rows: list[dict] = []
        body = self.request("GET", url, params=params)
        rows += body["results"]
        while body.get("next"):
            body = self.request("GET", body["next"])
            rows += body["results"]
        return rows


def find_case(client: Client, key: str) -> dict:
    found = client.request("GET", "/api/cases/", params={"key": key})["results"]
    if not found:
        raise SubmitError(f"no case {key} that this token's user is a member of")
    return found[0]


def upload(client: Client, case: dict, path: Path, description: str) -> dict:
    size = path.stat().st_size
    bar = _Progress("uploading", size, bytes_=True)
    try:
        with path.open("rb") as handle:
            body = _Counting(handle, bar.update)
            return client.request(
                "POST",
                f"/api/cases/{case['id']}/evidence/",
                files={"file": (path.name, body, "application/x-tar")},
                data={"description": description},
            )
    finally:
        bar.close()


def wait(client: Client, evidence_id: int, timeout: float, sleep=time.sleep) -> dict:
    """Poll the evidence until its scan is done: 0.5 s, then ×1.5 up to 10 s between polls."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    bar = _Progress("scanning", 1.0, bytes_=False)
    try:
        while True:
            scan = client.request("GET", f"/api/evidence/{evidence_id}/")["scan"] or {}
            bar.update(float(scan.get("progress") or 0.0))
            if scan.get("status") in ("succeeded", "failed"):
                return scan
            if time.monotonic() + delay > deadline:
                raise SubmitError(
                    f"the scan did not finish within {timeout:.0f} s "
                    f"(status {scan.get('status', '?')}); it goes on on the server"
                )
            sleep(delay)
            delay = min(delay * 1.5, 10.0)
    finally:
        bar.close()


def _layer(layer: dict):
    from scanner.engine.model import LayerResult

    names = (
        "diff_id",
        "media_type",
        "size",
        "uncompressed_size",
        "created_by",
        "files_added",
        "files_modified",
        "files_deleted",
        "trusted",
    )
    return LayerResult(
        index=layer["index"],
        digest=layer["digest"],
        empty_history=list(layer.get("empty_history") or []),
        **{name: layer[name] for name in names if name in layer},
    )


def _finding(f: dict):
    from scanner.engine.model import Finding, Severity

    return Finding(
        rule_id=f["rule_id"],
        severity=Severity(f["severity"]),
        title=f["title"],
        detail=f.get("detail", ""),
        layer_index=f.get("layer_index"),
        layer_digest=f.get("layer_digest") or "",
        path=f.get("path", ""),
        sha256=f.get("sha256", ""),
        fingerprint=f["fingerprint"],
        excerpt=f.get("excerpt", ""),
        remediation=f.get("remediation", ""),
        hidden_layer_index=f.get("hidden_layer_index"),
        related=list(f.get("related") or []),
        suppressed=bool(f.get("suppressed")),
        suppression=f.get("suppression", ""),
    )


def build_report(path: Path, evidence: dict, scan: dict, images: list[dict], findings: list[dict]):
    """The engine's ScanReport, rebuilt from what the server stored (for the JSON and SARIF writers)."""
    from scanner.engine.model import ImageResult, ScanReport, SourceInfo, Stats

    results = []
    by_image: dict[int | None, list[dict]] = {}
    for f in findings:
        by_image.setdefault(f.get("image"), []).append(f)
    placeholder = {"id": None, "manifest_digest": "", "config_digest": "", "repo_tags": [], "layers": []}
    for n, image in enumerate(images or [placeholder]):
        result = ImageResult(
            manifest_digest=image.get("manifest_digest") or "",
            config_digest=image.get("config_digest") or "",
            repo_tags=list(image.get("repo_tags") or []),
            platform=image.get("platform") or "",
            user=image.get("user") or "",
            created=image.get("created") or "",
            layers=[_layer(layer) for layer in image.get("layers", [])],
        )
        own = by_image.get(image["id"], []) if image["id"] is not None else []
        if n == 0:
            own = own + by_image.get(None, [])  # findings on no image (config-level) go with the first
        result.findings.extend(_finding(f) for f in own)
        results.append(result)
    stats = scan.get("stats") or {}
    return ScanReport(
        source=SourceInfo(path=str(path), format=str(stats.get("format", "")), sha256=evidence["sha256"]),
        images=results,
        stats=Stats(
            layers=int(stats.get("layers", 0)),
            files=int(stats.get("files", 0)),
            bytes_read=int(stats.get("bytes_read", 0)),
            seconds=float(stats.get("seconds", 0.0)),
        ),
    )


def render_table(case: dict, evidence: dict, scan: dict, findings: list[dict], url: str) -> str:
    lines = [
        f"case      {case['key']}  {case['title']}",
        f"evidence  {evidence['original_name']}  sha256 {evidence['sha256']}  {evidence['size']:,} bytes",
        f"scan      {scan['status']}  {url}",
        "",
    ]
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines.append(f"findings: {len(findings)}" + (f" ({summary})" if summary else ""))
    for f in sorted(
        findings, key=lambda f: (-RANK.get(f["severity"], 0), f.get("layer_index") or -1, f["path"])
    ):
        where = "image" if f.get("layer_index") is None else f"layer {f['layer_index']}"
        mark = " (suppressed)" if f.get("suppressed") else ""
        text = " ".join((f.get("path") or f["title"]).split())
        lines.append(f"  {f['severity'].upper():8}  {f['rule_id']:28}  {where:8}  {text[:80]}{mark}")
        if f.get("detail"):
            lines.append(f"            {' '.join(f['detail'].split())[:110]}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    path = Path(args.image)
    if not path.is_file():
        raise SubmitError(f"{path}: no such file")
    client = Client(args.server, args.token)
    case = find_case(client, args.case)
    evidence = upload(client, case, path, args.description)
    sys.stderr.write(
        f"uploaded {path.name}: sha256 {evidence['sha256']} ({evidence['size']:,} bytes), "
        f"evidence {evidence['id']} on {case['key']}\n"
    )
    scan = wait(client, evidence["id"], args.timeout)
    if scan["status"] == "failed":
        raise SubmitError(f"the scan failed: {' '.join((scan.get('error') or 'no reason given').split())}")
    findings = client.pages(
        f"/api/cases/{case['id']}/findings/", {"scan": scan["id"], "page_size": PAGE, "ordering": "severity"}
    )
    url = f"{client.server}/cases/{case['id']}/findings/"
    if args.format == "table":
        sys.stdout.write(render_table(case, evidence, scan, findings, url))
    else:
        images = client.pages(f"/api/evidence/{evidence['id']}/images/", {"page_size": PAGE})
        images = [image for image in images if image.get("scan") == scan["id"]]
        report = build_report(path, evidence, scan, images, findings)
        if args.format == "json":
            from scanner.engine.report import to_dict

            document = to_dict(report)
            document["submission"] = {
                "server": client.server,
                "case": case["key"],
                "evidence": evidence["id"],
                "scan": scan["id"],
                "url": url,
            }
        else:
            from scanner.engine import __version__
            from scanner.engine.rules import load_ruleset
            from scanner.engine.rules.sarif import to_sarif

            document = to_sarif(report, load_ruleset([]), version=__version__)
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    threshold = RANK[args.fail_on]
    failing = [f for f in findings if RANK.get(f["severity"], 0) >= threshold and not f.get("suppressed")]
    return 1 if failing else 0


def main(args: argparse.Namespace) -> int:
    """The subcommand, with its own errors turned into one line and exit 2."""
    try:
        return run(args)
    except SubmitError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
