"""Signature tests run offline: a guard makes any non-loopback connection fail the test."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from .testsigstore import TestSigstore

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guard(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise AssertionError(f"network access attempted during an offline test: {address!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def connect(sock, address):
        _guard(sock, address)
        return _real_connect(sock, address)

    def connect_ex(sock, address):
        _guard(sock, address)
        return _real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)

    def no_dns(*args, **kwargs):
        host = args[0] if args else kwargs.get("host")
        if host not in ("localhost", "127.0.0.1", "::1", None):
            raise AssertionError(f"DNS lookup attempted during an offline test: {host!r}")
        return _real_getaddrinfo(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)


_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(scope="session")
def ca() -> TestSigstore:
    return TestSigstore("lowerdir-test")


@pytest.fixture(scope="session")
def other_ca() -> TestSigstore:
    """Another private Sigstore nobody trusts."""
    return TestSigstore("lowerdir-untrusted")


@pytest.fixture(scope="session")
def trusted_root(ca, tmp_path_factory) -> str:
    return ca.write_trusted_root(tmp_path_factory.mktemp("trust") / "trusted_root.json")
