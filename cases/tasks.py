"""Celery tasks of the cases app (Celery's autodiscovery imports ``<app>.tasks`` modules only)."""

from .postmortem.tasks import render_postmortem, sweep_stale_exports

__all__ = ["render_postmortem", "sweep_stale_exports"]
