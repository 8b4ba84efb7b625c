"""Letter content: encrypted with AES-256-GCM under the letter's own key,
in chunks, streamed in and out without holding a whole letter in memory.

A deposit reads its client's stream into a sink (encrypted as it arrives,
with no transaction open): a spool, copied in with the letter in one short
transaction (a client that stalls holds no database lock), or an object
store's upload (content_store), which the letter's row then names."""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lre.server.domain.errors import InvalidArgument
from lre.server.storage.letters import ContentRepository

MAX_CHUNK_BYTES = 1024 * 1024
# Write encrypted chunks to the database every this many bytes, so that
# memory stays flat whatever the letter's size.
FLUSH_BYTES = 4 * 1024 * 1024
NONCE_BYTES = 12
# A deposit's spool stays in memory up to this (a usual letter never touches
# the disk), then goes to a file.
SPOOL_MEMORY_BYTES = 1024 * 1024
# A spooled chunk's header: part, sequence, ciphertext length.
RECORD = struct.Struct(">III")


def chunk_aad(letter_id: uuid.UUID, part: int, sequence: int) -> bytes:
    # Binds each chunk to its place: chunks cannot be swapped between letters or reordered.
    return f"{letter_id}:{part}:{sequence}".encode()


def _checked(
    sizes: list[int], chunks: Iterable[tuple[int, bytes]], hashes: list[Any]
) -> Iterator[tuple[int, int, bytes]]:
    """(part, sequence within the part, data) of chunks that follow the parts
    declared with ``sizes`` in order, each part hashed into ``hashes``; raises
    at the first chunk out of order or too long, and at the end if a part is short."""
    received = [0] * len(sizes)
    current, sequence = 0, 0
    for part_index, data in chunks:
        if not 0 <= part_index < len(sizes) or part_index < current:
            raise InvalidArgument("chunk.part_index", "parts must follow in the declared order")
        if not data or len(data) > MAX_CHUNK_BYTES:
            raise InvalidArgument("chunk.data", f"chunks carry 1 to {MAX_CHUNK_BYTES} bytes")
        if part_index != current:
            current, sequence = part_index, 0
        received[part_index] += len(data)
        if received[part_index] > sizes[part_index]:
            raise InvalidArgument("chunk.data", f"part {part_index} is longer than declared")
        hashes[part_index].update(data)
        yield part_index, sequence, data
        sequence += 1
    for i, size in enumerate(sizes):
        if received[i] != size:
            raise InvalidArgument(
                f"envelope.parts[{i}].size_bytes", "does not match the content sent"
            )


class Spool:
    """A deposit's content, encrypted as it arrives and kept here until the
    deposit's transaction copies it in, so that no transaction waits on the
    client. Ciphertext only (each chunk bound to its owner, part and place as
    in the database): in memory up to SPOOL_MEMORY_BYTES, beyond in an
    anonymous file in ``directory`` (unlinked from the start, so nothing
    outlives the deposit, a crash included). ``close()`` frees it."""

    # The content goes in the database's rows: no object.
    object_key: str | None = None

    def __init__(self, directory: str | None) -> None:
        # Closed by close(): the spool outlives this call, not the deposit.
        self._file = tempfile.SpooledTemporaryFile(SPOOL_MEMORY_BYTES, dir=directory)  # noqa: SIM115
        self.digests: list[bytes] = []

    def write(self, part_index: int, sequence: int, ciphertext: bytes) -> None:
        self._file.write(RECORD.pack(part_index, sequence, len(ciphertext)))
        self._file.write(ciphertext)

    def batches(self, owner_id: uuid.UUID) -> Iterator[list[dict[str, Any]]]:
        """Rows of about FLUSH_BYTES each, in order, read back from the spool."""
        self._file.seek(0)
        batch: list[dict[str, Any]] = []
        size = 0
        while header := self._file.read(RECORD.size):
            part_index, sequence, length = RECORD.unpack(header)
            ciphertext = self._file.read(length)
            batch.append(
                {
                    "letter_id": owner_id,
                    "part_index": part_index,
                    "sequence": sequence,
                    "ciphertext": ciphertext,
                }
            )
            size += length
            if size >= FLUSH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def finish(self) -> None:
        """All the content is in (nothing to do: the transaction copies it)."""

    def store(self, content: ContentRepository, owner_id: uuid.UUID) -> None:
        """Copies the spooled ciphertext in, in the caller's transaction, a batch
        of about FLUSH_BYTES at a time (memory stays flat whatever the size)."""
        for batch in self.batches(owner_id):
            content.add(batch)

    def stored(self) -> tuple[str, bytes] | None:
        """The object's key and SHA-256: none, the rows hold the content."""
        return None

    def discard(self) -> None:
        """The deposit did not commit: nothing was written anywhere but here."""

    def close(self) -> None:
        self._file.close()


class ContentSink(Protocol):
    """Where a deposit's ciphertext goes as it arrives: a ``Spool`` (then the
    database's rows, in the deposit's transaction), or an object store's
    upload (content_store.ObjectSink). ``finish()`` once everything is in,
    with no transaction open; ``store()`` in the deposit's transaction;
    ``discard()`` when the deposit did not commit; ``close()`` always."""

    object_key: str | None
    digests: list[bytes]

    def write(self, part_index: int, sequence: int, ciphertext: bytes) -> None: ...
    def finish(self) -> None: ...
    def stored(self) -> tuple[str, bytes] | None: ...
    def store(self, content: ContentRepository, owner_id: uuid.UUID) -> None: ...
    def discard(self) -> None: ...
    def close(self) -> None: ...


class ChunkSource(Protocol):
    """Where stored ciphertext is read back: (part, sequence, ciphertext) in order."""

    def read(self, letter_id: uuid.UUID) -> Iterator[tuple[int, int, bytes]]: ...


def spool_content(
    owner_id: uuid.UUID,
    key: bytes,
    sizes: list[int],
    chunks: Iterable[tuple[int, bytes]],
    sink: ContentSink,
) -> None:
    """Reads the chunks of parts declared with ``sizes`` from the client,
    encrypted under ``key`` for ``owner_id`` (the letter, or the mailing),
    into ``sink``, which then knows each part's SHA-256. Holds no transaction:
    this is where a deposit waits on its client. Raises as the checks of the
    chunks do, or when the client goes away (the caller closes the sink)."""
    cipher = AESGCM(key)
    hashes = [hashlib.sha256() for _ in sizes]
    for part_index, sequence, data in _checked(sizes, chunks, hashes):
        nonce = os.urandom(NONCE_BYTES)
        aad = chunk_aad(owner_id, part_index, sequence)
        sink.write(part_index, sequence, nonce + cipher.encrypt(nonce, data, aad))
    sink.digests = [h.digest() for h in hashes]


def content_digests(sizes: list[int], chunks: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """Each part's SHA-256, with the same checks as ``spool_content``, nothing stored."""
    hashes = [hashlib.sha256() for _ in sizes]
    for _ in _checked(sizes, chunks, hashes):
        pass
    return [h.digest() for h in hashes]


def decrypt_content(
    content: ChunkSource, letter_id: uuid.UUID, key: bytes
) -> Iterator[tuple[int, bytes]]:
    """The plaintext, (part, data) chunk by chunk, in order."""
    cipher = AESGCM(key)
    for part, sequence, ciphertext in content.read(letter_id):
        nonce, encrypted = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
        yield part, cipher.decrypt(nonce, encrypted, chunk_aad(letter_id, part, sequence))
