"""Requests the provider makes into the network on someone else's behalf
(webhooks, tree-head witnesses): a POST with a total deadline, redirects
refused, at most a few KiB of the answer read, and, where the destination
comes from a customer, the resolved address checked against loopback,
link-local and private ranges and then connected to (never resolved
again, so a name that changes its answer in between gains nothing)."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# An answer is a status line and a few headers; nothing else of it is used.
MAX_ANSWER_BYTES = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (tests give a stub).
Resolver = Callable[[str, int], list[str]]

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


class OutboundError(Exception):
    """The destination did not take the request; ``reason`` is short and
    safe to record (never the URL, which may carry a token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DestinationRefused(OutboundError):
    """The destination is not one the provider may call."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.1.0.0/16,fd00::/8``: ValueError if one is not a network."""
    return tuple(ipaddress.ip_network(n.strip()) for n in text.split(",") if n.strip())


def _public(address: Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query
    address: str  # the checked address the connection goes to


def destination(
    url: str,
    resolve: Resolver | None = None,
    allowed: Iterable[Network] | None = None,
) -> Destination:
    """The URL's destination, resolved once. With ``allowed`` given (a
    customer's URL), every address the name resolves to must be public or in
    ``allowed``, and http only to an allowed one; without, any address (an
    operator's configured URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("not an http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused("not a valid port") from None
    host = parts.hostname
    found = (resolve or system_resolver)(host, port)
    if not found:
        raise DestinationRefused("the name does not resolve")
    try:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    except ValueError:
        raise DestinationRefused("the name resolves to something that is not an address") from None
    if allowed is not None:
        networks = tuple(allowed)
        listed = [any(a in n for n in networks) for a in addresses]
        if not all(_public(a) or ok for a, ok in zip(addresses, listed, strict=True)):
            raise DestinationRefused("resolves to a private, loopback or link-local address")
        if parts.scheme == "http" and not all(listed):
            raise DestinationRefused("http only to an allowlisted address; use https")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port, target, str(addresses[0]))


def post(
    where: Destination,
    body: bytes,
    headers: dict[str, str],
    deadline_s: float,
    tls: ssl.SSLContext | None = None,
) -> int:
    """POSTs ``body``; the status when 2xx, else OutboundError (a 3xx is a
    refusal: redirects are not followed). The whole exchange, connection
    included, ends within ``deadline_s``: a destination that trickles its
    answer is cut then."""
    sock: socket.socket | None = None
    timer: threading.Timer | None = None
    try:
        sock = socket.create_connection((where.address, where.port), timeout=deadline_s)
        if where.scheme == "https":
            sock = (tls or ssl.create_default_context()).wrap_socket(
                sock, server_hostname=where.host
            )
        timer = threading.Timer(deadline_s, _cut, (sock,))
        timer.daemon = True
        timer.start()
        connection = http.client.HTTPConnection(where.host, where.port, timeout=deadline_s)
        connection.sock = sock
        name = f"[{where.host}]" if ":" in where.host else where.host
        default_port = 443 if where.scheme == "https" else 80
        host = name if where.port == default_port else f"{name}:{where.port}"
        connection.request(
            "POST",
            where.target,
            body=body,
            headers={"Host": host, "Connection": "close", **headers},
        )
        answer = connection.getresponse()
        answer.read(MAX_ANSWER_BYTES)
        status = answer.status
    except OutboundError:
        raise
    except Exception as exc:  # whatever the peer sent or did: a failed attempt
        raise OutboundError(type(exc).__name__) from None
    finally:
        if timer is not None:
            timer.cancel()
        if sock is not None:
            sock.close()
    if 300 <= status < 400:
        raise OutboundError(f"HTTP {status} (redirects are not followed)")
    if not 200 <= status < 300:
        raise OutboundError(f"HTTP {status}")
    return status


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
