"""How fast a scan's file records reach the database: COPY/executemany vs the ORM's bulk_create.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lowerdir_bench python benchmarks/store_records.py
    python benchmarks/store_records.py --records 100000      # SQLite in a temporary data dir

Creates a throw-away database (Django's test-database machinery), stores N synthetic records both
ways in the same run, and prints seconds, records/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LOWERDIR_DATA_DIR", tempfile.mkdtemp(prefix="lowerdir-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old = connection.creation.create_test_db(verbosity=0)
    try:
        run_benchmark(args.records)
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)


def run_benchmark(count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from cases.models import Case, Evidence
    from scanner.engine.model import EntryType, FileEntry
    from scanner.models import FileRecord, Image, Layer, ScanRun
    from scanner.persist import FILE_FIELDS, _file_row, insert_rows

    user = get_user_model().objects.create_user("bench")
    case = Case.open_case(lead=user, title="bench")
    evidence = Evidence.objects.create(
        case=case, original_name="x", sha256="0" * 64, size=0, storage_key="x", uploaded_by=user
    )
    run = ScanRun.objects.create(evidence=evidence)
    image = Image.objects.create(scan=run, manifest_digest="m", config_digest="c")
    layer = Layer.objects.create(image=image, index=0, digest="d")
    entries = [
        FileEntry(
            path=f"/usr/share/doc/pkg{i // 50}/file-{i}.txt",
            layer_index=0,
            type=EntryType.FILE,
            mode=0o644,
            size=i,
            sha256=f"{i:064x}",
            flags=frozenset({"hidden"} if i % 7 == 0 else ()),
        )
        for i in range(count)
    ]

    def fast() -> None:
        insert_rows(FileRecord, FILE_FIELDS, (_file_row(image.pk, layer.pk, e, {}) for e in entries))

    def orm() -> None:
        rows = (
            FileRecord(
                image=image,
                layer=layer,
                path=e.path,
                type=str(e.type),
                mode=e.mode,
                size=e.size,
                sha256=e.sha256,
                flags=" ".join(sorted(e.flags)),
                change=str(e.change),
            )
            for e in entries
        )
        FileRecord.objects.bulk_create(rows, batch_size=5000)

    results = {}
    for name, fn in (("copy/executemany", fast), ("orm bulk_create", orm)):
        with transaction.atomic():
            start = time.perf_counter()
            fn()
            results[name] = time.perf_counter() - start
            assert FileRecord.objects.count() == count
            FileRecord.objects.all().delete()
    print(f"database: {connection.vendor}, records: {count:,}")
    for name, seconds in results.items():
        print(f"  {name:18s} {seconds:7.2f} s  {count / seconds:10,.0f} records/s")
    print(f"  speed-up: {results['orm bulk_create'] / results['copy/executemany']:.1f}x")


if __name__ == "__main__":
    main()
