"""Run the whole app on one machine: the web server, a Celery worker and the beat scheduler."""

from __future__ import annotations

import signal
import subprocess
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start a Celery worker (with beat) in a child process, then serve the web app in this one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, addrport: str, concurrency: int, **options) -> None:
        worker = subprocess.Popen([
            sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--loglevel", "INFO",
            "--concurrency", str(concurrency), "--without-mingle", "--without-gossip",
        ])
        self.stdout.write(f"Celery worker and beat started (pid {worker.pid})")
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
