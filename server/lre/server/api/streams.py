"""The API's streams: a deposit's request stream read as an envelope and its
chunks, and bytes answered in pieces small enough for any client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lre.server.domain.errors import InvalidArgument

# What one response message carries at most: well under gRPC's default 4 MiB.
WIRE_CHUNK = 64 * 1024


def envelope_then_chunks(messages: Iterator[Any]) -> tuple[Any, Iterator[tuple[int, bytes]]]:
    """A deposit stream (DepositLetter, DepositMailing): its envelope first,
    then (part_index, data) of each chunk, read lazily as the client sends."""
    first = next(messages, None)
    if first is None or first.WhichOneof("payload") != "envelope":
        raise InvalidArgument("envelope", "the first message carries the envelope")

    def chunks() -> Iterator[tuple[int, bytes]]:
        for message in messages:
            if message.WhichOneof("payload") != "chunk":
                raise InvalidArgument("chunk", "only the first message carries an envelope")
            yield message.chunk.part_index, message.chunk.data

    return first.envelope, chunks()


def pieces(data: bytes) -> Iterator[bytes]:
    """``data`` in wire-sized pieces, in order."""
    for offset in range(0, len(data), WIRE_CHUNK):
        yield data[offset : offset + WIRE_CHUNK]
