"""The deployment files follow the practices Lowerdir's own scanner checks for, and they validate."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "LOWERDIR_", "DATABASE_URL", "CELERY_"))
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", "LOWERDIR_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_with_production_settings(tmp_path):
    """Only the deliberate exception remains: HSTS preload is opt-in (docs/operations.md)."""
    result = run_manage(
        "check",
        "--deploy",
        env={"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "lowerdir.example.org"},
        tmp_path=tmp_path,
    )
    issues = set(re.findall(r"\((\w+\.\w+)\)", result.stderr + result.stdout))
    assert issues <= {"security.W021"}, result.stderr + result.stdout
    preload = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_HSTS_PRELOAD": "1",
            "DJANGO_ALLOWED_HOSTS": "lowerdir.example.org",
        },
        tmp_path=tmp_path,
    )
    assert preload.returncode == 0, preload.stderr


def test_secret_key_is_required_without_debug(tmp_path):
    result = run_manage("check", env={}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_debug_generates_a_private_dev_key(tmp_path):
    result = run_manage("check", env={"DJANGO_DEBUG": "1"}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    key = tmp_path / "dev-secret-key"
    assert key.stat().st_mode & 0o077 == 0 and len(key.read_text().strip()) >= 50


def test_database_url_selects_the_backend(tmp_path):
    code = "from django.conf import settings as s; d = s.DATABASES['default']; print(d['ENGINE'], d['NAME'])"
    env = {"DJANGO_DEBUG": "1", "DATABASE_URL": "postgres://u:p@db.internal:5432/lowerdir"}
    result = run_manage("shell", "-v", "0", "-c", code, env=env, tmp_path=tmp_path)
    assert result.stdout.split() == ["django.db.backends.postgresql", "lowerdir"], result.stderr
    result = run_manage("shell", "-v", "0", "-c", code, env={"DJANGO_DEBUG": "1"}, tmp_path=tmp_path)
    assert result.stdout.split() == ["django.db.backends.sqlite3", str(tmp_path / "lowerdir.sqlite3")], (
        result.stderr
    )


def test_dockerfile_practices():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) >= 2, "multi-stage build"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M).group(1)
    assert re.search(r"@sha256:[0-9a-f]{64}$", base), "base image pinned by digest"
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0"), "runs as a non-root user"
    env_lines = " ".join(re.findall(r"^ENV\s+(.*)$", text, re.M))
    assert not re.search(r"(SECRET|PASSWORD|TOKEN|KEY)\w*=", env_lines, re.I), "no secrets in ENV"


@pytest.mark.tools
@pytest.mark.skipif(
    not shutil.which("docker-compose"), reason="docker-compose (Debian package) is not installed"
)
def test_compose_file_validates():
    env = {**os.environ, "DJANGO_SECRET_KEY": "validation-only"}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        env={k: v for k, v in env.items() if k != "DJANGO_SECRET_KEY"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and "DJANGO_SECRET_KEY" in missing.stderr


def test_compose_services_have_health_checks_and_volumes():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "redis", "postgres"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
    assert {"evidence", "pgdata"} <= set(compose["volumes"])
