"""RFC 9162 (Certificate Transparency 2.0) Merkle tree checks, written from
the RFC (2.1.3.2) so that the verifier shares no code with the log."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(
    leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes]
) -> bytes:
    """The root the audit path leads to; ValueError if it cannot be a path
    for that index in a tree of that size."""
    if not 0 <= leaf_index < tree_size:
        raise ValueError("the leaf index is outside the tree")
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash(leaf)
    for p in path:
        if sn == 0:
            raise ValueError("the audit path is too long for the tree")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("the audit path is too short for the tree")
    return r
