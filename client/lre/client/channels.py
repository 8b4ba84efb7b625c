"""The server and the signer as each caller of the walkthroughs reaches them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from lre.dev.tls import TlsFiles
from lre.runtime.tls import channel_credentials


@dataclass(frozen=True)
class Connections:
    """The server as each caller reaches it (one channel for all without TLS)."""

    sender_gateway: grpc.Channel
    recipient_portal: grpc.Channel
    operator: grpc.Channel
    signer: grpc.Channel


@contextlib.contextmanager
def connect(server: str, signer: str, tls_dir: Path | None) -> Iterator[Connections]:
    """Mutual TLS with the development certificates of ``tls_dir`` when given."""
    if tls_dir is None:
        with grpc.insecure_channel(server) as plain, grpc.insecure_channel(signer) as to_signer:
            yield Connections(plain, plain, plain, to_signer)
        return
    files = TlsFiles(tls_dir)

    def secure(address: str, caller: str) -> grpc.Channel:
        return grpc.secure_channel(
            address,
            channel_credentials(files.ca, files.client_cert(caller), files.client_key(caller)),
        )

    with (
        secure(server, "sender-gateway") as sender,
        secure(server, "recipient-portal") as recipient,
        secure(server, "operator") as operator,
        secure(signer, "operator") as to_signer,
    ):
        yield Connections(sender, recipient, operator, to_signer)


def bearer(token: str) -> tuple[tuple[str, str]]:
    """The call metadata of a party's session."""
    return (("authorization", f"Bearer {token}"),)
