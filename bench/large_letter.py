"""Large-letter benchmark: one 256 MB letter deposited and then
downloaded over gRPC (PostgreSQL, real signer), watching the server's memory.

Prints the deposit and download rates beside a baseline measured in the same
run (SHA-256 and AES-256-GCM over the same bytes in one Python thread: the
work the server cannot avoid), and the server's peak resident memory above its
resident memory before the deposit, and during the download above its level
just before it. Usage:
  python bench/large_letter.py [--megabytes 256] [--chunk-kb 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import POSTGRES, Stack, running_stack
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc

MB = 1024 * 1024


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak(pid: int) -> None:
    """The process's peak resident memory (VmHWM) set back to its current
    level (Linux: clear_refs), so that the next peak is one step's own; left
    as it is where that is not allowed (then the peak read is the lifetime's)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        print(
            f"note: the peak could not be reset ({exc.strerror}): the download's is the lifetime's"
        )


def _content(size: int, chunk: int) -> Iterator[bytes]:
    block = os.urandom(chunk)
    for offset in range(0, size, chunk):
        # Each chunk differs, so nothing downstream can deduplicate.
        yield offset.to_bytes(8, "big") + block[8 : min(chunk, size - offset)]


def _baseline(size: int, chunk: int) -> float:
    cipher = AESGCM(os.urandom(32))
    digest = hashlib.sha256()
    start = time.perf_counter()
    for data in _content(size, chunk):
        digest.update(data)
        cipher.encrypt(os.urandom(12), data, b"aad")
    return size / MB / (time.perf_counter() - start)


def transfer(stack: Stack, size: int, chunk: int) -> dict[str, float]:
    """One letter of ``size`` bytes deposited, notified, accepted and
    downloaded over gRPC: MB/s in and out, and the server's resident memory
    (KiB) before, and its peak after the deposit and after the download; its
    resident memory just before the download, and its peak during it."""
    pid = stack.server.pid
    with grpc.insecure_channel(
        stack.address, options=[("grpc.max_receive_message_length", 8 * MB)]
    ) as channel:
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        sender = (("authorization", f"Bearer {stack.sender_token}"),)
        recipient = (("authorization", f"Bearer {stack.recipient_token}"),)
        rss_before = _memory_kb(pid, "VmRSS")

        def requests() -> Iterator[custody_pb2.DepositLetterRequest]:
            yield custody_pb2.DepositLetterRequest(
                envelope=custody_pb2.LetterEnvelope(
                    request_id=str(uuid.uuid4()),
                    recipient=stack.recipient,
                    parts=[
                        custody_pb2.ContentPart(
                            filename="large.bin",
                            media_type="application/octet-stream",
                            size_bytes=size,
                        )
                    ],
                )
            )
            for data in _content(size, chunk):
                yield custody_pb2.DepositLetterRequest(
                    chunk=custody_pb2.ContentChunk(part_index=0, data=data)
                )

        start = time.perf_counter()
        letter = custody.DepositLetter(requests(), metadata=sender, timeout=600)
        deposit_rate = size / MB / (time.perf_counter() - start)
        rss_after_deposit = _memory_kb(pid, "VmHWM")
        # The notification goes out on its own (workers on); then the recipient accepts.
        deadline = time.monotonic() + 60
        while True:
            got = custody.GetLetter(
                custody_pb2.GetLetterRequest(name=letter.name), metadata=recipient
            )
            if got.state == common_pb2.LETTER_STATE_NOTIFIED:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the letter was not notified within 60 s")
            time.sleep(0.2)
        custody.AcceptLetter(custody_pb2.AcceptLetterRequest(name=letter.name), metadata=recipient)
        # The download's own peak: the proofs rendered since the deposit (PDF,
        # with their fonts) raised the lifetime's.
        peak_before_download = _memory_kb(pid, "VmHWM")
        _reset_peak(pid)
        rss_before_download = _memory_kb(pid, "VmRSS")
        received = 0
        digest = hashlib.sha256()
        start = time.perf_counter()
        for piece in custody.DownloadLetterContent(
            custody_pb2.DownloadLetterContentRequest(name=letter.name),
            metadata=recipient,
            timeout=600,
        ):
            received += len(piece.data)
            digest.update(piece.data)
        download_rate = size / MB / (time.perf_counter() - start)
        download_peak = _memory_kb(pid, "VmHWM")
        peak = max(peak_before_download, download_peak)
    assert received == size, (received, size)
    assert digest.digest() == letter.parts[0].digest.value, "downloaded content differs"
    return {
        "in": deposit_rate,
        "out": download_rate,
        "rss": rss_before,
        "hwm_in": rss_after_deposit,
        "hwm_out": peak,
        "rss_down": rss_before_download,
        "hwm_down": download_peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--chunk-kb", type=int, default=1024)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    size, chunk = args.megabytes * MB, args.chunk_kb * 1024
    baseline = _baseline(size, chunk)
    with running_stack(server_processes=1, postgres=args.postgres, run_workers=True) as stack:
        figures = transfer(stack, size, chunk)
    deposit_rate, download_rate = figures["in"], figures["out"]
    rss_after_deposit, peak, rss_before = figures["hwm_in"], figures["hwm_out"], figures["rss"]
    print(f"letter: {args.megabytes} MB in {args.chunk_kb} KB chunks; PostgreSQL; 1 server process")
    print(f"baseline, SHA-256 + AES-256-GCM in one thread: {baseline:7.0f} MB/s")
    print(f"deposit:                                       {deposit_rate:7.0f} MB/s")
    print(f"download:                                      {download_rate:7.0f} MB/s")
    print(
        f"server peak memory above its level before the deposit: "
        f"{(rss_after_deposit - rss_before) / 1024:.0f} MB after the deposit, "
        f"{(peak - rss_before) / 1024:.0f} MB after the download"
    )
    print(
        f"server peak memory during the download above its level just before it: "
        f"{(figures['hwm_down'] - figures['rss_down']) / 1024:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
