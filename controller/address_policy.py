"""Which addresses workflows and webhooks may reach: a config author's URL must not reach the cloud metadata
service, a router's admin page or another host of the private network unless the operator listed it.

Refused unless `webhooks.allow` lists the host name, the address or a network holding it: private (RFC 1918,
IPv6 unique local), link-local (169.254.0.0/16 with the metadata address 169.254.169.254, fe80::/10), shared
(100.64.0.0/10), multicast, reserved and unspecified addresses. Loopback is allowed: on premises the operator's
tools often run on the same host, and a URL's host is literal in the config (`check` shows it). The address
checked is the one the socket connected to, so a name that resolves to a refused address (DNS rebinding) is
refused as well.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
SHARED = ipaddress.ip_network("100.64.0.0/10")


def parse_allowed(entry: str) -> Union[str, Network]:
    """A `webhooks.allow` entry: an address or CIDR network, or a host name (compared case-insensitively);
    ValueError says what is wrong."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if not text or len(text) > 253 or not all(label and len(label) <= 63 and label.replace("-", "").isalnum()
                                              and label.isascii() for label in labels):
        raise ValueError(f"{entry!r} is neither a host name, an address nor a CIDR network")
    return text.rstrip(".").lower()


def why_refused(address: Address) -> str | None:
    """The kind of a refused address ('link-local (cloud metadata)', 'private'...), None when it is allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    if address.is_link_local:
        return "link-local (the cloud metadata service lives there)"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED:
        return "shared address space (carrier-grade NAT)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """The `webhooks.allow` entries of one configuration."""

    allowed: tuple[Union[str, Network], ...] = ()

    @classmethod
    def from_entries(cls, entries: list[str]) -> "AddressPolicy":
        return cls(tuple(parse_allowed(entry) for entry in entries))

    def refusal(self, host: str, address: str) -> str | None:
        """Why a request to `host`, connected to `address`, may not go on; None when it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        kind = why_refused(ip)
        if kind is None or host.rstrip(".").lower() in self.allowed:
            return None
        if any(isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and ip.version == net.version
               and ip in net for net in self.allowed):
            return None
        shown = host if host == address else f"{host} ({address})"
        return (f"{shown} is a {kind} address; list the host or its network in webhooks.allow if this "
                "workflow is meant to reach it")
