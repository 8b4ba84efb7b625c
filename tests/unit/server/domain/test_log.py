"""The server's RFC 9162 tree against the independent verifier, for every
size and index up to 40 (and the RFC's own small examples)."""

from __future__ import annotations

import hashlib

from lre.server.domain import log
from tests.support import rfc9162


def _tree(n: int) -> tuple[list[bytes], list[bytes]]:
    leaves = [f"leaf {i}".encode() for i in range(n)]
    return leaves, [log.leaf_hash(leaf) for leaf in leaves]


def _mth(hashes: list[bytes]) -> bytes:
    """MTH by the RFC's recursive definition, as a second reference."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:])).digest()


def test_roots_follow_the_recursive_definition() -> None:
    assert log.root([]) == hashlib.sha256(b"").digest()
    for n in range(1, 41):
        _, hashes = _tree(n)
        assert log.root(hashes) == _mth(hashes)


def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not() -> None:
    for n in range(1, 41):
        leaves, hashes = _tree(n)
        root = log.root(hashes)
        for i in range(n):
            path = log.inclusion_proof(i, hashes)
            assert rfc9162.verify_inclusion(leaves[i], i, n, path, root)
            assert not rfc9162.verify_inclusion(b"forged", i, n, path, root)
            if n > 1:
                assert not rfc9162.verify_inclusion(leaves[i], (i + 1) % n, n, path, root)


def test_every_consistency_proof_verifies_and_a_changed_history_does_not() -> None:
    for n in range(1, 41):
        _, hashes = _tree(n)
        for m in range(1, n + 1):
            path = log.consistency_proof(m, hashes)
            old, new = log.root(hashes[:m]), log.root(hashes)
            assert rfc9162.verify_consistency(m, n, old, new, path), (m, n)
            if m < n:
                rewritten = [log.leaf_hash(b"rewritten"), *hashes[1:m]]
                assert not rfc9162.verify_consistency(m, n, log.root(rewritten), new, path)


def test_a_compact_range_streams_every_root_and_the_nodes_proofs_read() -> None:
    _, hashes = _tree(40)
    tree, nodes = log.MerkleRange(), {}
    for n, leaf_hash in enumerate(hashes, start=1):
        for level, position, value in tree.append(leaf_hash):
            nodes[level, position] = value
        assert tree.root() == _mth(hashes[:n])
        resumed = log.MerkleRange(n, [nodes[peak] for peak in log.peaks(n)])
        assert resumed.root() == tree.root()
    for (level, position), value in nodes.items():
        assert value == _mth(hashes[position << level : (position + 1) << level])


def test_a_proof_over_a_million_leaves_reads_o_log_n_nodes() -> None:
    reads = []

    def node(level: int, position: int) -> bytes:
        reads.append((level, position))
        return hashlib.sha256(f"{level}/{position}".encode()).digest()

    n = 1_000_003
    for index in (0, 524_287, 999_999, n - 1):
        reads.clear()
        assert len(log.inclusion_path(index, n, node)) <= 21
        assert len(reads) <= 2 * n.bit_length()
    for old in (1, 524_288, 777_777, n - 1):
        reads.clear()
        log.consistency_path(old, n, node)
        assert len(reads) <= 2 * n.bit_length()
    reads.clear()
    log.range_hash(0, n, node)
    assert len(reads) == n.bit_count()


def test_the_domain_verifies_proofs_as_the_independent_verifier_does() -> None:
    for n in range(1, 34):
        _, hashes = _tree(n)
        root = log.root(hashes)
        for i in range(n):
            path = log.inclusion_proof(i, hashes)
            assert log.verify_inclusion(hashes[i], i, n, path, root)
            assert not log.verify_inclusion(hashes[i], i, n, path, log.leaf_hash(b"x"))
            if path:
                assert not log.verify_inclusion(hashes[i], i, n, path[:-1], root)
        for m in range(1, n + 1):
            path = log.consistency_proof(m, hashes)
            old = log.root(hashes[:m])
            assert log.verify_consistency(m, n, old, root, path)
            assert rfc9162.verify_consistency(m, n, old, root, path)
            if m < n:
                assert not log.verify_consistency(m, n, log.leaf_hash(b"x"), root, path)
