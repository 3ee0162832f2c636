"""Indexes for the cross-case pivot (``/api/search/``): file records and findings by path, exact or prefix.

PostgreSQL: a B-tree on ``path COLLATE "C"`` (byte order). The pivot compares ``path COLLATE "C"``, so
this one index serves ``=``, ``LIKE 'prefix%'`` (as a range scan, whatever the database's collation: a
default-collation index cannot serve LIKE unless that collation is "C") and ``ORDER BY path`` (a page of
a prefix with a million matches reads ~50 index entries, not all of them, as a ``text_pattern_ops`` index
would, whose order ORDER BY cannot use). It is built ``CONCURRENTLY`` so a big table keeps taking scan
results while it builds (hence not atomic).
SQLite: a plain index, which serves ``=`` and the range ``path >= prefix AND path < next(prefix)`` that
``cases.api.filters.prefix_q`` turns a prefix into (SQLite's LIKE is case-insensitive and never indexed);
SQLite compares text bytewise, like "C".

SHA-256 lookups already have indexes (``FileRecord.sha256``, ``Finding.sha256``, ``Evidence.sha256``).
The indexes are not declared on the models: Django's ``Index(opclasses=…)`` is PostgreSQL-only.
"""

from django.db import migrations

INDEXES = [
    ("scanner_filerecord", "scanner_filerecord_path_c"),
    ("scanner_finding", "scanner_finding_path_c"),
]


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, name in INDEXES:
        if vendor == "postgresql":
            schema_editor.execute(
                f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" ("path" COLLATE "C")'
            )
        else:
            schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("path")')


def drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for _table, name in INDEXES:
        schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("scanner", "0003_finding_rule_pack")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
