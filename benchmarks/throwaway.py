"""A throw-away Lowerdir for benchmarks: production settings on a temporary data dir, migrated."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def throwaway_app() -> Iterator[str]:
    """Configure and migrate Django on a fresh SQLite data dir; removed afterwards. Yields the dir."""
    data_dir = tempfile.mkdtemp(prefix="lowerdir-bench-")
    try:
        os.environ.update(
            {
                "LOWERDIR_DATA_DIR": data_dir,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DJANGO_SECRET_KEY": "benchmark-only-not-secret",
                "DJANGO_ALLOWED_HOSTS": "testserver",
                "DJANGO_SECURE_SSL_REDIRECT": "0",
                "LOWERDIR_LOG_LEVEL": "WARNING",
            }
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield data_dir
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
