"""Letter content: encrypted with AES-256-GCM under the letter's own key,
in chunks, streamed in and out without holding a whole letter in memory."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lre.server.domain.errors import InvalidArgument
from lre.server.storage.letters import ContentRepository

MAX_CHUNK_BYTES = 1024 * 1024
# Write encrypted chunks to the database every this many bytes, so that
# memory stays flat whatever the letter's size.
FLUSH_BYTES = 4 * 1024 * 1024
NONCE_BYTES = 12


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


def encrypt_content(
    content: ContentRepository,
    letter_id: uuid.UUID,
    key: bytes,
    sizes: list[int],
    chunks: Iterable[tuple[int, bytes]],
) -> list[bytes]:
    """Encrypts and writes the chunks of parts declared with ``sizes``, in the
    caller's transaction; returns each part's SHA-256."""
    cipher = AESGCM(key)
    hashes = [hashlib.sha256() for _ in sizes]
    pending: list[dict[str, Any]] = []
    unwritten = 0
    for part_index, sequence, data in _checked(sizes, chunks, hashes):
        nonce = os.urandom(NONCE_BYTES)
        aad = chunk_aad(letter_id, part_index, sequence)
        pending.append(
            {
                "letter_id": letter_id,
                "part_index": part_index,
                "sequence": sequence,
                "ciphertext": nonce + cipher.encrypt(nonce, data, aad),
            }
        )
        unwritten += len(data)
        if unwritten >= FLUSH_BYTES:
            # Written chunks are in the transaction, not in memory.
            content.add(pending)
            pending, unwritten = [], 0
    content.add(pending)
    return [h.digest() for h in hashes]


def content_digests(sizes: list[int], chunks: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """Each part's SHA-256, with the same checks as ``encrypt_content``, nothing stored."""
    hashes = [hashlib.sha256() for _ in sizes]
    for _ in _checked(sizes, chunks, hashes):
        pass
    return [h.digest() for h in hashes]


def decrypt_content(
    content: ContentRepository, letter_id: uuid.UUID, key: bytes
) -> Iterator[tuple[int, bytes]]:
    """The plaintext, (part, data) chunk by chunk, in order."""
    cipher = AESGCM(key)
    for part, sequence, ciphertext in content.read(letter_id):
        nonce, encrypted = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
        yield part, cipher.decrypt(nonce, encrypted, chunk_aad(letter_id, part, sequence))
