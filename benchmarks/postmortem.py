"""Post-mortem benchmark: how long the PDF of a large case takes, and how many pages it has.

Builds one case (``cases.demo`` + ``cases.postmortem.sample``: a scanned poisoned image, narrative,
triage, five remediation checklists) with 1,000 findings and 200 stored timeline entries in a throw-away
SQLite database, then times each phase of one export on this process (one core): reading the context,
rendering the HTML, WeasyPrint's layout and PDF writing; and the Markdown and JSON of the same context.

    .venv/bin/python benchmarks/postmortem.py [--findings 1000] [--timeline 200] [--runs 3] [--out x.pdf]

The issue's target is under 10 s for the PDF on one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from throwaway import throwaway_app  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--findings", type=int, default=1_000)
    parser.add_argument("--timeline", type=int, default=200, help="stored timeline entries")
    parser.add_argument("--files", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", help="also write the PDF here")
    args = parser.parse_args()
    with throwaway_app():
        return run(args)


def run(args) -> int:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
        cores = "1 core (pinned)"
    except (AttributeError, OSError):
        cores = f"{os.cpu_count()} cores (could not pin)"
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cases.demo import build_demo_case
    from cases.models import TimelineEvent
    from cases.postmortem import context, markdown, render
    from cases.postmortem.sample import work_the_case

    user = get_user_model().objects.create_user("bench")
    started = time.perf_counter()
    case = build_demo_case(user, findings=args.findings, files=args.files)
    work_the_case(case, user, timeline=args.timeline, triage=min(120, args.findings))
    stored = TimelineEvent.objects.filter(case=case).count()
    print(
        f"built a case with {args.findings:,} findings, {stored} stored timeline entries "
        f"in {time.perf_counter() - started:.1f} s (SQLite); measuring on {cores}"
    )

    phases: dict[str, list[float]] = {k: [] for k in ("context", "html", "layout", "write", "pdf total")}
    cpu: list[float] = []
    pages = size = queries = entries = 0
    data = b""
    for _ in range(args.runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            pm = context.build(case, user=user, tlp="amber", classification="Confidential", export_id=1)
        t1 = time.perf_counter()
        source = render.html(pm)
        t2 = time.perf_counter()
        from weasyprint import HTML

        from cases.postmortem.fetcher import BASE_URL, StaticOnlyFetcher

        document = HTML(string=source, base_url=BASE_URL, url_fetcher=StaticOnlyFetcher()).render()
        t3 = time.perf_counter()
        data = document.write_pdf()
        t4 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        for name, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            phases[name].append(value)
        pages, size, queries, entries = len(document.pages), len(data), len(captured), len(pm.timeline)
    t0 = time.perf_counter()
    md = markdown.render(pm)
    t_md = time.perf_counter() - t0
    t0 = time.perf_counter()
    js = render.json_bytes(pm)
    t_json = time.perf_counter() - t0
    if args.out:
        Path(args.out).write_bytes(data)

    print(f"\ntimeline entries in the document: {entries} (stored + custody + scans + build history)")
    print(f"context queries: {queries}\n")
    print(f"{'phase':12} {'median s':>9} {'max s':>7}")
    for name, values in phases.items():
        print(f"{name:12} {statistics.median(values):9.2f} {max(values):7.2f}")
    total = statistics.median(phases["pdf total"])
    load = os.getloadavg()[0]
    verdict = "OK" if total < 10 else "OVER TARGET"
    print(
        f"\nPDF: {pages} pages, {size / 1024:.0f} KiB, {total:.2f} s wall "
        f"(CPU {statistics.median(cpu):.2f} s), median of {args.runs}; target < 10 s: {verdict} "
        f"(load average {load:.1f})"
    )
    print(
        f"Markdown: {len(md) / 1024:.0f} KiB in {t_md:.2f} s; "
        f"JSON: {len(js) / 1024:.0f} KiB in {t_json:.2f} s"
    )
    return 0 if total < 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
