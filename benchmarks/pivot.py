"""Pivot benchmark: ``/api/search/`` on PostgreSQL with a million file records or more.

Builds a throw-away PostgreSQL database (``lowerdir_pivot_bench`` by default; dropped first, dropped again
at the end unless ``--keep``) with ``--cases`` cases of one scanned image each, ``--files`` file records in
all and ~50 findings per case. Images share base layers (the same library bytes in every case) and a
miner's hash is planted in three cases. An analyst is a member of ``--member-of`` cases.

Then it runs each pivot through the whole Django stack (URL routing, auth, visibility, pagination,
serialisation) and prints the median and worst of ``--runs`` requests, and the PostgreSQL plan
(``EXPLAIN (ANALYZE, BUFFERS)``) of each page query.

    .venv/bin/python benchmarks/pivot.py [--files 1000000] [--cases 200] [--runs 15]
        [--server postgres://postgres@127.0.0.1:5432] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIRS = [
    "/usr/lib/x86_64-linux-gnu/",
    "/usr/share/doc/",
    "/usr/share/locale/de/LC_MESSAGES/",
    "/usr/bin/",
    "/usr/sbin/",
    "/etc/",
    "/var/lib/dpkg/info/",
    "/usr/lib/python3/dist-packages/app/",
    "/usr/include/",
    "/opt/app/node_modules/",
    "/usr/share/zoneinfo/Europe/",
    "/lib/systemd/system/",
]
MINER = hashlib.sha256(b"xmrig: the miner from DESIGN section 1").hexdigest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--member-of", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="lowerdir_pivot_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    import psycopg

    admin = f"{args.server}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    data_dir = tempfile.mkdtemp(prefix="lowerdir-pivot-")
    try:
        return run(args, data_dir)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)


def build(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from cases.models import Case, CaseMembership, Evidence, Role
    from scanner.models import FileRecord, Finding, Image, Layer, ScanRun, ScanStatus
    from scanner.persist import FILE_FIELDS, insert_rows

    rng = random.Random(42)
    users = get_user_model().objects
    analyst = users.create_user("analyst")
    owner = users.create_user("owner")
    per_image = args.files // args.cases
    base = [(rng.choice(DIRS) + f"f{n:06d}", sha(f"base-{n}")) for n in range(per_image // 2)]
    miner_cases = {3, args.cases // 2, args.cases - 1}
    started = time.perf_counter()
    for n in range(args.cases):
        with transaction.atomic():
            case = Case.open_case(lead=owner, title=f"Case {n}")
            if n < args.member_of or n == args.cases // 2:
                CaseMembership.objects.create(case=case, user=analyst, role=Role.VIEWER)
            blob = sha(f"evidence-{n}")
            evidence = Evidence.objects.create(
                case=case,
                original_name=f"img{n}.tar",
                sha256=blob,
                size=1,
                storage_key=f"evidence/sha256/{blob[:2]}/{blob}",
                uploaded_by=owner,
            )
            run = ScanRun.objects.create(evidence=evidence, status=ScanStatus.SUCCEEDED, progress=1.0)
            image = Image.objects.create(
                scan=run, manifest_digest="sha256:" + sha(f"m{n}"), config_digest="sha256:" + sha(f"c{n}")
            )
            layers = Layer.objects.bulk_create(
                Layer(image=image, index=i, digest="sha256:" + sha(f"l{n}-{i}")) for i in range(5)
            )

            def rows(n=n, image=image, layers=layers):
                for path, digest in base:  # the shared base layer: the same bytes in every case
                    yield (
                        image.pk,
                        layers[0].pk,
                        path,
                        "file",
                        0o644,
                        0,
                        0,
                        100,
                        0,
                        "",
                        digest,
                        "",
                        "added",
                        True,
                        None,
                        "",
                    )
                for i in range(per_image - len(base)):  # the application layers: unique
                    layer = layers[1 + i % 4]
                    yield (
                        image.pk,
                        layer.pk,
                        rng.choice(DIRS) + f"app{n}-{i}",
                        "file",
                        0o644,
                        0,
                        0,
                        100,
                        0,
                        "",
                        sha(f"app-{n}-{i}"),
                        "",
                        "added",
                        True,
                        None,
                        "",
                    )
                if n in miner_cases:
                    yield (
                        image.pk,
                        layers[2].pk,
                        "/usr/bin/.hidden_miner",
                        "file",
                        0o4755,
                        0,
                        0,
                        64,
                        0,
                        "",
                        MINER,
                        "setuid elf hidden",
                        "added",
                        False,
                        3,
                        "whiteout",
                    )

            insert_rows(FileRecord, FILE_FIELDS, rows())
            Finding.objects.bulk_create(
                Finding(
                    case=case,
                    scan=run,
                    image=image,
                    layer=layers[i % 5],
                    rule_id="malware.yara" if (i == 0 and n in miner_cases) else f"rule.{i % 7}",
                    severity=("critical", "high", "medium", "low", "info")[i % 5],
                    title=f"finding {i}",
                    path=(base[i][0] if i else "/usr/bin/.hidden_miner"),
                    sha256=MINER if (i == 0 and n in miner_cases) else base[i][1],
                    fingerprint=f"{n}-{i}",
                )
                for i in range(50)
            )
        if n % 20 == 19:
            print(
                f"  {n + 1} cases, {(n + 1) * per_image:,} file records, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # autocommit outside a transaction
        cursor.execute("SELECT count(*) FROM scanner_filerecord")
        total = cursor.fetchone()[0]
    return {"analyst": analyst, "total": total, "shared": base[7], "seconds": time.perf_counter() - started}


def run(args, data_dir: str) -> int:
    os.environ.update(
        {
            "LOWERDIR_DATA_DIR": data_dir,
            "DATABASE_URL": f"{args.server}/{args.database}",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_SECRET_KEY": "benchmark-only-not-secret",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "LOWERDIR_LOG_LEVEL": "WARNING",
            "LOWERDIR_THROTTLE_USER": "1000000/min",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from cases import search

    setup_test_environment()
    call_command("migrate", verbosity=0)
    print(
        f"building {args.cases} cases with {args.files:,} file records on PostgreSQL "
        f"({connection.pg_version // 10000}) ...",
        flush=True,
    )
    built = build(args)
    analyst = built["analyst"]
    print(
        f"built {built['total']:,} file records in {built['seconds']:.0f} s; the analyst is a member of "
        f"{args.member_of + 1} of {args.cases} cases\n"
    )

    shared_path, shared_sha = built["shared"]
    prefix = shared_path.rsplit("/", 1)[0] + "/"
    pivots = [
        ("sha256 (planted miner: 3 cases, 1 visible)", {"sha256": MINER}),
        ("sha256 (a base-layer file in every case)", {"sha256": shared_sha}),
        ("exact path (miner)", {"path": "/usr/bin/.hidden_miner"}),
        ("exact path (base-layer file)", {"path": shared_path}),
        (f"path prefix {prefix}", {"path_prefix": prefix}),
        ("path prefix /usr/bin/.hid", {"path_prefix": "/usr/bin/.hid"}),
        ("rule_id malware.yara", {"rule_id": "malware.yara"}),
    ]
    client = Client()
    client.force_login(analyst)
    print(f"{'pivot':48} {'endpoint':22} {'count':>7} {'median':>9} {'worst':>9} {'queries':>7}")
    for label, params in pivots:
        for endpoint in ("/api/search/files/", "/api/search/findings/", "/api/search/"):
            times, queries, count = [], 0, 0
            for _ in range(args.runs):
                with CaptureQueriesContext(connection) as captured:
                    t0 = time.perf_counter()
                    response = client.get(endpoint, params)
                    times.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.content[:300]
                queries = len(captured)
                body = response.json()
                count = body.get("count", body.get("files", {}).get("count"))
            print(
                f"{label:48} {endpoint.removeprefix('/api/search'):22} {count:>7,} "
                f"{statistics.median(times) * 1000:>7.1f}ms {max(times) * 1000:>7.1f}ms {queries:>7}"
            )
    print("\nPostgreSQL plans of the page queries (EXPLAIN ANALYZE, BUFFERS):")
    for label, params in pivots[:1] + pivots[2:3] + pivots[4:5]:
        pivot = search.Pivot.from_params(params)
        queryset = search.files(analyst, pivot)[:50]
        print(f"\n--- files: {label}\n{queryset.query}\n")
        print(queryset.explain(analyze=True, buffers=True))
    pivot = search.Pivot.from_params({"rule_id": "malware.yara"})
    print("\n--- findings: rule_id malware.yara\n")
    print(search.findings(analyst, pivot)[:50].explain(analyze=True, buffers=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
