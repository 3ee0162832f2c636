"""Pull images from registries over the OCI Distribution API (no Django). See docs/registry.md.

    from scanner.engine.registry import NetPolicy, PullOptions, pull
    result = pull("registry.example.com/team/app:1.2", "app.tar",
                  policy=NetPolicy.from_lists(["registry.example.com"]))
    result.resolved_digest, result.custody_text()

The archive written is an OCI image layout tar: ordinary evidence for :func:`scanner.engine.scan`.
Names are imported lazily: the engine imports this package, and httpx is only needed to pull.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "Credentials": "options",
    "RegistryClient": "client",
    "RegistryError": "client",
    "BlockedAddress": "netpolicy",
    "NetPolicy": "netpolicy",
    "PullOptions": "options",
    "PullResult": "fetch",
    "pull": "fetch",
    "Reference": "reference",
    "ReferenceError": "reference",
    "parse_reference": "reference",
    "RegistryConfig": "source",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(name)
