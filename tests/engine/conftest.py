"""Engine tests: no Django, no database (run with ``-p no:django``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("engine", max_examples=100, deadline=None, suppress_health_check=_QUIET)
# HYPOTHESIS_PROFILE=engine-deep for a long fuzzing session (per-test max_examples still cap some tests)
settings.register_profile("engine-deep", max_examples=5000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "engine"))


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path) -> Path:
    """Overrides the Django suite's autouse fixture of the same name: the engine has no store."""
    return tmp_path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes seconds (the gzip bomb); deselect with -m 'not slow'")
