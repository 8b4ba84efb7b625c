"""PDF proof benchmark: prints, from one run on this machine, against one
signer process (its own token and PKI in a temporary folder, 127.0.0.1 only,
bounded in time):

- rendering alone (lre.server.proofs.render_proof, in this process);
- SignPdf alone (PAdES B-LT with the seal key, timestamp and DSS), one
  rendered proof signed again and again by C concurrent callers;
- whole proofs: CAdES seal of a fresh evidence, render, SignPdf, by W
  worker processes (each is what one server process would do).

Usage: python bench/pdf_proofs.py [--seconds 10] [--concurrency 4] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.signer_throughput import run_signer
from lre.server.adapters.signer import SignerClient
from lre.server.domain.evidence import EvidenceDocument, IssuerDetails, PartDigest, PartyDetails
from lre.server.domain.letters import EvidenceEvent
from lre.server.proofs import proof_pdf, render_proof
from lre.signer.devsetup import dev_setup


def evidence(client: SignerClient) -> bytes:
    now = dt.datetime.now(dt.UTC)
    certificate = client.certificate_chain("seal")[0]
    return EvidenceDocument(
        evidence_id=str(uuid.uuid4()),
        event=EvidenceEvent.SUBMISSION_ACCEPTANCE,
        event_time=now,
        policy_oid="2.999.319522.1",
        issuer=IssuerDetails.of("LRE Benchmark Provider", certificate),
        sender=PartyDetails("Société Dupont & Fils", "courrier@dupont.example", str(uuid.uuid4())),
        recipient=PartyDetails("Élodie Martin-Lefèvre", "elodie@example.org", str(uuid.uuid4())),
        letter_id=f"letters/{uuid.uuid4()}",
        submission_time=now,
        parts=(PartDigest("mise-en-demeure.pdf", "application/pdf", 183422, "ab" * 32),),
    ).to_json()


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rate": len(ordered) / seconds,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if len(ordered) > 1 else 0.0,
    }


def render_only(client: SignerClient, seconds: float) -> dict[str, float]:
    document = evidence(client)
    seal = client.seal(document)
    render_proof(document, seal)  # warm-up: fonts, templates
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        render_proof(document, seal)
        latencies.append(time.perf_counter() - t)
    return _summary(latencies, time.perf_counter() - start)


def sign_only(client: SignerClient, seconds: float, concurrency: int) -> dict[str, float]:
    document = evidence(client)
    pdf = render_proof(document, client.seal(document))
    client.sign_pdf(pdf)  # warm-up
    deadline = time.perf_counter() + seconds

    def worker() -> list[float]:
        latencies = []
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            client.sign_pdf(pdf)
            latencies.append(time.perf_counter() - t)
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [f.result() for f in [pool.submit(worker) for _ in range(concurrency)]]
    return _summary([x for r in results for x in r], time.perf_counter() - start)


def _proof_worker(args: tuple[str, float]) -> list[float]:
    address, seconds = args
    client = SignerClient(address, timeout_s=30)
    try:
        document = evidence(client)
        proof_pdf(document, client.seal(document), client)  # warm-up
        latencies = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            document = evidence(client)
            proof_pdf(document, client.seal(document), client)
            latencies.append(time.perf_counter() - t)
        return latencies
    finally:
        client.close()


def whole_proofs(address: str, seconds: float, workers: int) -> dict[str, float]:
    # Each worker warms up, then runs for ``seconds``: the rate is over that window.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.map(_proof_worker, [(address, seconds)] * workers)
    return _summary([x for r in results for x in r], seconds)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="lre-bench-pdf-"))
    dev_setup(var)
    signer, address = run_signer(var, processes=1)
    client = SignerClient(address, timeout_s=30)
    try:
        print(f"machine: {os.cpu_count()} cores; {args.seconds:.0f} s per measurement")
        sample = render_proof(document := evidence(client), client.seal(document))
        signed = client.sign_pdf(sample)
        print(f"proof size: {len(sample)} bytes rendered, {len(signed)} bytes signed (B-LT)")
        print()
        print(f"{'what':42s} |     /s | p50 ms | p99 ms")
        rows = [
            ("render only (1 thread, this process)", render_only(client, args.seconds)),
            (
                f"SignPdf only ({args.concurrency} concurrent callers)",
                sign_only(client, args.seconds, args.concurrency),
            ),
        ]
        rows += [
            (
                f"seal + render + SignPdf ({w} worker proc.)",
                whole_proofs(address, args.seconds, w),
            )
            for w in args.workers
        ]
        for name, r in rows:
            print(f"{name:42s} | {r['rate']:6.1f} | {r['p50_ms']:6.1f} | {r['p99_ms']:6.1f}")
    finally:
        client.close()
        signer.terminate()
        signer.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
