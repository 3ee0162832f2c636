"""Pull images from registries over the OCI Distribution API (no Django). See docs/registry.md.

    from scanner.engine.registry import NetPolicy, PullOptions, pull
    result = pull("registry.example.com/team/app:1.2", "app.tar",
                  policy=NetPolicy.from_lists(["registry.example.com"]))
    result.resolved_digest, result.custody_text()

The archive written is an OCI image layout tar: ordinary evidence for :func:`scanner.engine.scan`.
"""

from .client import Credentials, RegistryClient, RegistryError
from .netpolicy import BlockedAddress, NetPolicy
from .pull import PullOptions, PullResult, pull
from .reference import Reference, ReferenceError, parse_reference

__all__ = [
    "BlockedAddress",
    "Credentials",
    "NetPolicy",
    "PullOptions",
    "PullResult",
    "Reference",
    "ReferenceError",
    "RegistryClient",
    "RegistryError",
    "parse_reference",
    "pull",
]
