"""The caller's certificate names are read once per call, however many
parts of the gate ask."""

from __future__ import annotations

from lre.runtime.callers import certificate_names
from lre.runtime.limits import caller_of


class _Context:
    """A call's TLS properties as gRPC gives them; counts the reads."""

    def __init__(self, *names: bytes) -> None:
        self.reads = 0
        self._names = list(names)

    def auth_context(self) -> dict[str, list[bytes]]:
        self.reads += 1
        return {"x509_subject_alternative_name": self._names}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:4242"


def test_names_are_read_once_per_call_and_never_taken_from_another() -> None:
    first = _Context(b"Gateway.LRE.internal", b"alt.lre.internal")
    assert certificate_names(first) == ("gateway.lre.internal", "alt.lre.internal")  # type: ignore[arg-type]
    assert caller_of(first) == "alt.lre.internal,gateway.lre.internal"  # type: ignore[arg-type]
    assert first.reads == 1
    second = _Context(b"auditor.lre.internal")
    assert certificate_names(second) == ("auditor.lre.internal",)  # type: ignore[arg-type]
    assert second.reads == 1


def test_a_call_without_a_certificate_is_its_peer_address() -> None:
    assert caller_of(_Context()) == "ipv4:127.0.0.1"  # type: ignore[arg-type]
