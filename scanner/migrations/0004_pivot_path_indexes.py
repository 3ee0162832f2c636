"""Indexes for the cross-case pivot (``/api/search/``): file records and findings by path, exact or prefix.

PostgreSQL: a B-tree with ``text_pattern_ops`` serves both ``path = '…'`` and ``path LIKE 'prefix%'`` in
any database collation (the default operator class cannot serve LIKE unless the collation is "C"). It is
built ``CONCURRENTLY`` so a big table keeps taking scan results while it builds (hence not atomic).
SQLite: a plain index, which serves ``=`` and the range ``path >= prefix AND path < next(prefix)`` that
``cases.api.filters.prefix_q`` turns a prefix into (SQLite's LIKE is case-insensitive and never indexed).

SHA-256 lookups already have indexes (``FileRecord.sha256``, ``Finding.sha256``, ``Evidence.sha256``).
The indexes are not declared on the models: Django's ``Index(opclasses=…)`` is PostgreSQL-only.
"""

from django.db import migrations

INDEXES = [
    ("scanner_filerecord", "scanner_filerecord_path_pattern"),
    ("scanner_finding", "scanner_finding_path_pattern"),
]


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, name in INDEXES:
        if vendor == "postgresql":
            schema_editor.execute(
                f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" ("path" text_pattern_ops)'
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
