"""Where the registry client may connect: the SSRF guard.

Every hop (the registry, a token realm, each redirect, blob storage) goes through :meth:`NetPolicy.check`:

- the host must be on the allow-list, or on the insecure list, or — when the allow-list is empty — resolve
  to public addresses only (``ipaddress.is_global``: no loopback, private, link-local, CGNAT, multicast,
  reserved or unspecified addresses; IPv4-mapped IPv6 is unwrapped first);
- plain ``http`` only for hosts on the insecure list, which may also resolve to private and loopback
  addresses (a registry on the LAN, or on 127.0.0.1 in tests);
- the name is resolved once, every address is checked, and the connection goes to the checked address
  (the URL carries the IP; ``Host`` and TLS SNI / certificate checks use the name), so a second DNS
  answer cannot swap in an internal address between the check and the connect (DNS rebinding).

Entries are ``host`` (any port) or ``host:port``; ``[v6]:port`` for IPv6 literals. Case-insensitive.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..model import ScanError

Resolver = Callable[[str, int], list[str]]
# Docker Hub serves its API, tokens and blobs from other hosts: allowing docker.io allows them.
ALIASES = {"docker.io": ("registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com")}


class BlockedAddress(ScanError):
    """The policy refuses to connect there."""


def _system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedAddress(f"cannot resolve {host}: {exc.strerror or exc}") from None
    out: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in out:
            out.append(addr)
    return out


def _norm_entries(entries: Iterable[str]) -> frozenset[str]:
    out = set()
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            continue
        out.add(entry)
        for alias in ALIASES.get(entry, ()):
            out.add(alias)
    return frozenset(out)


@dataclass(frozen=True)
class Target:
    """A checked hop: connect to ``ip`` and speak to ``host`` there."""

    scheme: str
    host: str
    port: int
    ip: str
    insecure: bool

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def ip_url(self, path_and_query: str) -> str:
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{ip}:{self.port}{path_and_query}"


@dataclass(frozen=True)
class NetPolicy:
    allowlist: frozenset[str] = field(default_factory=frozenset)
    insecure: frozenset[str] = field(default_factory=frozenset)
    resolver: Resolver = _system_resolver

    @classmethod
    def from_lists(
        cls, allowlist: Iterable[str] = (), insecure: Iterable[str] = (), resolver: Resolver | None = None
    ) -> NetPolicy:
        return cls(_norm_entries(allowlist), _norm_entries(insecure), resolver or _system_resolver)

    @staticmethod
    def _keys(host: str, port: int) -> tuple[str, str]:
        shown = f"[{host}]" if ":" in host else host
        return shown.lower(), f"{shown}:{port}".lower()

    def is_insecure(self, host: str, port: int) -> bool:
        return any(k in self.insecure for k in self._keys(host, port))

    def check_url(self, url: str) -> tuple[Target, str]:
        """Check an absolute URL; returns the target and the path + query to request."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise BlockedAddress(f"refusing a {parts.scheme or 'relative'} URL: only http(s) is allowed")
        if parts.username or parts.password:
            raise BlockedAddress("refusing a URL with credentials in it")
        host = (parts.hostname or "").lower()
        if not host:
            raise BlockedAddress("refusing a URL without a host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise BlockedAddress("refusing a URL with an invalid port") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return self.check(parts.scheme, host, port), path

    def check(self, scheme: str, host: str, port: int) -> Target:
        keys = self._keys(host, port)
        shown = keys[1]
        insecure = self.is_insecure(host, port)
        listed = any(k in self.allowlist for k in keys)
        if self.allowlist and not listed and not insecure:
            raise BlockedAddress(
                f"registry host {shown} is not on the allow-list (LOWERDIR_REGISTRY_ALLOWLIST)"
            )
        if scheme == "http" and not insecure:
            raise BlockedAddress(
                f"refusing plain HTTP to {shown}: only hosts on LOWERDIR_REGISTRY_INSECURE may "
                "be reached without TLS"
            )
        addresses = self.resolver(host, port)
        if not addresses:
            raise BlockedAddress(f"{host} resolves to no address")
        for addr in addresses:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                raise BlockedAddress(f"{host} resolves to an invalid address {addr!r}") from None
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            if ip.is_unspecified or ip.is_multicast:
                raise BlockedAddress(f"{shown} resolves to {ip}, which is never a registry")
            if not insecure and not ip.is_global:
                raise BlockedAddress(
                    f"{shown} resolves to the non-public address {ip}: only hosts on "
                    "LOWERDIR_REGISTRY_INSECURE may be reached on private or loopback addresses"
                )
        return Target(scheme, host, port, addresses[0], insecure)
