"""Where an outbound request may go (lre.server.adapters.outbound.destination),
with a stub resolver: no name is looked up, no packet is sent."""

from __future__ import annotations

import pytest

from lre.server.adapters import outbound
from tests.support.peers import stub_resolver

NAMES = {
    "public.example": "93.184.215.14",
    "metadata.example": "169.254.169.254",
    "intranet.example": "10.1.2.3",
    "mapped.example": "::ffff:192.168.0.1",
    "garbage.example": "not-an-address",
}
RESOLVE = stub_resolver(NAMES)


@pytest.mark.parametrize(
    "url",
    [
        "https://metadata.example/latest",
        "https://intranet.example/hook",
        "https://mapped.example/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "http://public.example/hook",  # public, but http
        "https://nowhere.example/hook",  # does not resolve
        "https://garbage.example/hook",
        "ftp://public.example/x",
        "https:///no-host",
    ],
)
def test_customer_destinations_outside_public_https_are_refused(url: str) -> None:
    with pytest.raises(outbound.DestinationRefused):
        outbound.destination(url, RESOLVE, ())


def test_the_destination_is_the_checked_address() -> None:
    where = outbound.destination("https://public.example:8443/a/b?c=d", RESOLVE, ())
    assert (where.address, where.port, where.host, where.target) == (
        "93.184.215.14",
        8443,
        "public.example",
        "/a/b?c=d",
    )


def test_an_allowlisted_network_may_be_reached_over_http() -> None:
    allowed = outbound.parse_networks("10.1.0.0/16")
    assert outbound.destination("http://intranet.example/h", RESOLVE, allowed).address == "10.1.2.3"
    with pytest.raises(outbound.DestinationRefused):
        outbound.destination("http://metadata.example/h", RESOLVE, allowed)


def test_an_operator_url_is_not_checked_against_ranges() -> None:
    assert outbound.destination("http://intranet.example/h", RESOLVE).address == "10.1.2.3"
