"""Rule-pack tests: synthetic images (tests/imagefactory.py) for each rule, and real Debian images built
with mmdebstrap + buildah (test_debian.py, marked ``tools``). The engine needs no Django."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path) -> Path:
    """Overrides the Django suite's autouse fixture of the same name: the engine has no store."""
    return tmp_path
