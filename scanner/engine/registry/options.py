"""Options for pulls (no httpx here: the engine imports this for every scan)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..limits import Limits


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass
class PullOptions:
    platform: str = "linux/amd64"
    limits: Limits = field(default_factory=Limits)
    max_total_bytes: int = 20 * 1024**3
    signatures: bool = True  # also fetch referrers, the referrers tag and the legacy .sig tag
    credentials: dict[str, Credentials] = field(default_factory=dict)  # registry host[:port] -> credentials
    timeout: float = 30.0
