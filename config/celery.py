"""The Celery app. Tasks take ids and load their rows; the database, not the broker, holds scan state."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("lowerdir")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
