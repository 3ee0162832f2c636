"""Settings for the test suite: the production settings, with a throw-away data dir and secret.

Values go into ``os.environ`` (not just this module) so that worker subprocesses started by the
integration tests inherit the very same data dir, queue name, secret and broker folder.
"""

import os
import secrets
import tempfile

os.environ.setdefault("LOWERDIR_DATA_DIR", tempfile.mkdtemp(prefix="lowerdir-test-"))
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
# A queue of its own, so a shared Redis never hands this run's tasks to another run's workers.
os.environ.setdefault("LOWERDIR_QUEUE", f"lowerdir-test-{secrets.token_hex(4)}")

from .settings import *  # noqa: E402,F403

# No collectstatic in tests: plain static storage (the manifest storage is exercised by `check --deploy`).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
