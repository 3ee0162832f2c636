"""The SSRF guard without a network: resolution is faked."""

from __future__ import annotations

import pytest

from scanner.engine.registry import BlockedAddress, NetPolicy


def resolver(table):
    return lambda host, port: table[host]


@pytest.mark.parametrize(
    "addresses",
    [
        ["93.184.215.14", "10.1.2.3"],  # one private answer among public ones
        ["::ffff:127.0.0.1"],  # IPv4-mapped loopback
        ["fd00::1"],  # unique local
        ["100.64.0.1"],  # CGNAT
        ["0.0.0.0"],  # noqa: S104 - an answer to refuse, not a bind
    ],
)
def test_hosts_resolving_to_non_public_addresses_are_refused(addresses) -> None:
    policy = NetPolicy.from_lists(resolver=resolver({"reg.example": addresses}))
    with pytest.raises(BlockedAddress):
        policy.check("https", "reg.example", 443)


def test_the_checked_address_is_the_one_connected_to() -> None:
    policy = NetPolicy.from_lists(resolver=resolver({"reg.example": ["93.184.215.14"]}))
    target = policy.check("https", "reg.example", 443)
    assert target.ip_url("/v2/") == "https://93.184.215.14:443/v2/"
    assert target.netloc == "reg.example"


def test_allow_list_ports_and_aliases() -> None:
    table = {"reg.example": ["93.184.215.14"], "auth.docker.io": ["93.184.215.15"]}
    policy = NetPolicy.from_lists(allowlist=["reg.example:5000", "docker.io"], resolver=resolver(table))
    policy.check("https", "reg.example", 5000)
    policy.check("https", "auth.docker.io", 443)
    with pytest.raises(BlockedAddress, match="not on the allow-list"):
        policy.check("https", "reg.example", 443)


def test_insecure_hosts_may_use_http_and_private_addresses() -> None:
    policy = NetPolicy.from_lists(
        insecure=["lan-registry:5000"], resolver=resolver({"lan-registry": ["192.168.1.10"]})
    )
    assert policy.check("http", "lan-registry", 5000).ip == "192.168.1.10"
    with pytest.raises(BlockedAddress, match="plain HTTP"):
        policy.check("http", "lan-registry", 80)
