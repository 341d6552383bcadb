"""Which network endpoints a developer's URL may make us talk to.

A destination (and, later, a webhook) URL is untrusted input: left alone it could point our
workers at the cloud metadata service, the database, or any host behind the firewall, and a
plain ``http://`` one would carry users' data in clear text. The policy, in one place:

- **https only**, unless ``allow_http`` (local and test endpoints).
- **public addresses only**: the host is resolved and *every* address it resolves to must be a
  global unicast address. Loopback, RFC 1918, link-local, CGNAT (100.64/10), ULA (fc00::/7),
  documentation and benchmarking ranges are refused unless ``allow_private`` (local dev,
  tests, the demo). IPv4 addresses embedded in IPv6 (mapped, 6to4, NAT64) are judged as IPv4.
- **never**, whatever the settings: cloud metadata services (169.254.169.254, fd00:ec2::254,
  ``metadata.google.internal``...), the unspecified address, multicast, broadcast and
  reserved ranges.

It is applied at registration (``check_url``) and again when connecting (``check_host`` before
each request, ``check_address`` on the socket's actual peer), since DNS can change in between.
Refusals say what is wrong in our words; they never echo what a name resolved to, which would
turn the check into an oracle of internal DNS (the ``detail`` keeps it for staff).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from portability.errors import EndpointRefusedError

__all__ = [
    "EndpointPolicy",
    "Resolver",
    "address_problem",
    "check_url_shape",
    "system_resolver",
]

#: ``host -> addresses`` (textual IPs); raises ``OSError`` when the name does not resolve.
Resolver = Callable[[str], Sequence[str]]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",
        "100.100.100.200",  # Alibaba Cloud
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def system_resolver(host: str) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), as the socket layer would."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: _IP, *, allow_private: bool) -> str | None:
    """Why ``ip`` may not be an endpoint (a short noun phrase), or ``None`` if it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return address_problem(inner, allow_private=allow_private)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata service"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_loopback:  # before "reserved": ::1 lies in IPv6's reserved ::/8
        return None if allow_private else "a loopback address"
    if ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "a reserved address"
    if ip.is_global:
        return None
    if allow_private:
        return None
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    return "a private or internal address"


def _literal(host: str) -> _IP | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url_shape(url: str) -> SplitResult:
    """The checks that hold whatever the settings: http(s), a host, no user info, no metadata.

    What the ORM validator runs on every stored endpoint; it needs no DNS.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointRefusedError(f"endpoint URL {url!r} is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise EndpointRefusedError(
            f"endpoint URL {url!r} must start with https:// (or http:// where allowed) "
            "and name a host"
        )
    if any(ch.isspace() for ch in url):
        raise EndpointRefusedError(f"endpoint URL {url!r} must not contain spaces")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefusedError(
            "endpoint URL must not carry user info (user:password@): give the keys as the "
            "destination's credentials"
        )
    if parts.query or parts.fragment:
        raise EndpointRefusedError(f"endpoint URL {url!r} must not have a query or fragment")
    if port == 0:
        raise EndpointRefusedError(f"endpoint URL {url!r} has port 0")
    host = parts.hostname.rstrip(".").lower()
    if host in METADATA_NAMES:
        raise EndpointRefusedError(f"endpoint host {host!r} is a cloud metadata service")
    literal = _literal(host)
    if literal is not None:
        problem = address_problem(literal, allow_private=True)
        if problem is not None:
            raise EndpointRefusedError(f"endpoint address {host} is {problem}")
    return parts


@dataclass(frozen=True)
class EndpointPolicy:
    """What a deployment allows; build it from settings (``Settings.endpoint_policy``).

    ``resolve`` is the seam tests use to make a name resolve where they need it.
    """

    allow_http: bool = False
    allow_private: bool = False
    resolve: Resolver = field(default=system_resolver, repr=False, compare=False)

    def check_url(self, url: str) -> None:
        """Registration: the URL's shape, its scheme, and every address its host resolves to."""
        parts = check_url_shape(url)
        self.check_scheme(parts.scheme)
        assert parts.hostname is not None  # check_url_shape refuses a URL without a host
        self.check_host(parts.hostname)

    def check_scheme(self, scheme: str) -> None:
        if scheme == "http" and not self.allow_http:
            raise EndpointRefusedError(
                "endpoint must use https: plain http would carry users' data in clear text "
                "(operators may allow http for local endpoints with "
                "PORTABILITY_ALLOW_HTTP_ENDPOINTS)"
            )
        if scheme not in {"http", "https"}:
            raise EndpointRefusedError(f"endpoint scheme {scheme!r} must be https")

    def check_host(self, host: str) -> None:
        """Resolve ``host`` now; refuse it if any address is not allowed."""
        host = host.strip("[]").rstrip(".").lower()
        if host in METADATA_NAMES:
            raise EndpointRefusedError(f"endpoint host {host!r} is a cloud metadata service")
        literal = _literal(host)
        if literal is not None:
            self.check_address(str(literal), host)
            return
        try:
            addresses = list(self.resolve(host))
        except (OSError, UnicodeError) as exc:
            raise EndpointRefusedError(
                f"endpoint host {host!r} does not resolve to a public internet address",
                detail=f"resolving {host!r} failed: {exc}",
            ) from None
        if not addresses:
            raise EndpointRefusedError(
                f"endpoint host {host!r} does not resolve to a public internet address",
                detail=f"{host!r} resolved to nothing",
            )
        for address in addresses:
            problem = address_problem(
                ipaddress.ip_address(address), allow_private=self.allow_private
            )
            if problem is not None:
                raise EndpointRefusedError(
                    f"endpoint host {host!r} does not resolve to a public internet address",
                    detail=f"{host!r} resolves to {address}, {problem}",
                )

    def check_address(self, address: str, host: str) -> None:
        """One concrete address: a literal host, or the peer of a socket we just opened."""
        problem = address_problem(ipaddress.ip_address(address), allow_private=self.allow_private)
        if problem is None:
            return
        if _literal(host.strip("[]")) is not None:
            raise EndpointRefusedError(f"endpoint address {host} is {problem}")
        raise EndpointRefusedError(
            f"endpoint host {host!r} does not resolve to a public internet address",
            detail=f"{host!r} connected to {address}, {problem}",
        )
