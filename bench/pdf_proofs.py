"""PDF proof benchmark: prints, from one run on this machine, against one
signer process (its own token and PKI in a temporary folder, 127.0.0.1 only,
bounded in time):

- rendering one proof (the same evidence, in this process), by each candidate
  engine: Typst (lre.server.proofs, what the server uses), ReportLab (the same
  page laid out with its platypus, untagged: reportlab cannot tag), and
  WeasyPrint (the renderer of ``--old``, run from that commit's code). An
  engine that is not installed is named and skipped (``uv pip install
  reportlab weasyprint``; WeasyPrint also needs Debian's pango);
- signing, per signer process, C concurrent callers: ``SignPdf`` (the old
  path and baseline: the signer parses the PDF and writes the signature and
  then the DSS with pyHanko) beside ``SignPdfDigest`` (the signer signs the
  byte-range digest: signature and timestamp) and the server's whole one-pass
  signing (DSS and signature dictionary assembled here, then SignPdfDigest);
- whole proofs (CAdES seal of a fresh evidence, render, one-pass signing) by
  W worker processes, with the CPU time of the workers and of the signer
  process per proof (from /proc).

Usage: python bench/pdf_proofs.py [--seconds 10] [--concurrency 4] [--workers 1 2] [--old aecc4ed]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.signer_throughput import run_signer
from lre.server.adapters.signer import SignerClient
from lre.server.domain.evidence import EvidenceDocument, IssuerDetails, PartDigest, PartyDetails
from lre.server.domain.letters import EvidenceEvent
from lre.server.proofs import proof_pdf, render_proof
from lre.server.proofs.pades import ProofSigner
from lre.signer.devsetup import dev_setup
from lre.v1 import signing_pb2

ROOT = Path(__file__).resolve().parent.parent
# The last commit whose proofs WeasyPrint rendered.
OLD = "aecc4ed"


def evidence(client: SignerClient, certificate: bytes | None = None) -> bytes:
    """A fresh evidence; ``certificate``: the seal's, as the server keeps it."""
    now = dt.datetime.now(dt.UTC)
    certificate = certificate or client.certificate_chain("seal")[0]
    return EvidenceDocument(
        evidence_id=str(uuid.uuid4()),
        event=EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
        event_time=now,
        policy_oid="2.999.319522.1",
        issuer=IssuerDetails.of("LRE Benchmark Provider", certificate),
        sender=PartyDetails("Société Dupont & Fils", "courrier@dupont.example", str(uuid.uuid4())),
        recipient=PartyDetails("Élodie Martin-Lefèvre", "elodie@example.org", str(uuid.uuid4())),
        letter_id=f"letters/{uuid.uuid4()}",
        submission_time=now - dt.timedelta(days=3),
        parts=(
            PartDigest("mise-en-demeure.pdf", "application/pdf", 183422, "ab" * 32),
            PartDigest("annexe n°1.pdf", "application/pdf", 40211, "cd" * 32),
        ),
        letter_reference="6G7R2SAPSAWM",
        notification_time=now - dt.timedelta(days=2),
    ).to_json()


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rate": len(ordered) / seconds,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
    }


def _loop(work: Callable[[], object], seconds: float) -> dict[str, float]:
    work()  # warm-up: fonts, templates, connections
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        work()
        latencies.append(time.perf_counter() - t)
    return _summary(latencies, time.perf_counter() - start)


def _concurrently(work: Callable[[], object], seconds: float, callers: int) -> dict[str, float]:
    work()
    deadline = time.perf_counter() + seconds

    def caller() -> list[float]:
        latencies = []
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            work()
            latencies.append(time.perf_counter() - t)
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        results = [f.result() for f in [pool.submit(caller) for _ in range(callers)]]
    return _summary([x for r in results for x in r], time.perf_counter() - start)


# -- rendering candidates ---------------------------------------------------------


def reportlab_page() -> Callable[[bytes, bytes], bytes] | None:
    """The proof's page laid out by ReportLab from the same view as the Typst template."""
    try:
        from bench.reportlab_proof import render
    except ImportError:
        return None
    return render


_OLD_RENDER = """
import importlib.util, json, sys, time
root = sys.argv[1]
sys.path.insert(0, root)
# The old package's __init__ imports the signer client (generated code not in
# the archive): the package is registered without running it, then its renderer loaded.
folder = root + "/lre/server/proofs"
spec = importlib.util.spec_from_file_location(
    "lre.server.proofs", folder + "/__init__.py", submodule_search_locations=[folder]
)
sys.modules["lre.server.proofs"] = importlib.util.module_from_spec(spec)
from lre.server.proofs.render import render_proof
document, seal = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
render_proof(document, seal)
seconds, latencies, start = float(sys.argv[4]), [], time.perf_counter()
while time.perf_counter() - start < seconds:
    t = time.perf_counter(); render_proof(document, seal); latencies.append(time.perf_counter() - t)
print(json.dumps([latencies, time.perf_counter() - start]))
"""


def weasyprint_old(
    document: bytes, seal: bytes, seconds: float, old: str, work: Path
) -> dict[str, float] | str:
    """The old renderer, from ``old``'s code, in a process of its own."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"skipped: WeasyPrint not usable here ({type(exc).__name__})"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", old, "lre"], capture_output=True, check=True
    )
    tree = work / "old"
    tree.mkdir()
    with tarfile.open(fileobj=__import__("io").BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    (work / "evidence.json").write_bytes(document)
    (work / "seal.p7m").write_bytes(seal)
    run = subprocess.run(
        [sys.executable, "-c", _OLD_RENDER, str(tree), str(work / "evidence.json"),
         str(work / "seal.p7m"), str(seconds)],
        capture_output=True, text=True, timeout=seconds + 120,
    )  # fmt: skip
    if run.returncode != 0:
        return f"skipped: the old renderer failed ({run.stderr.strip().splitlines()[-1:]})"
    latencies, elapsed = json.loads(run.stdout.strip().splitlines()[-1])
    return _summary(latencies, elapsed)


# -- whole proofs from worker processes ----------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proof_worker(args: tuple[str, float]) -> tuple[list[float], float]:
    address, seconds = args
    client = SignerClient(address, timeout_s=30)
    try:
        certificate = client.certificate_chain("seal")[0]
        document = evidence(client, certificate)
        proof_pdf(document, client.seal(document), client)  # warm-up
        latencies = []
        cpu = time.process_time()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            document = evidence(client, certificate)
            proof_pdf(document, client.seal(document), client)
            latencies.append(time.perf_counter() - t)
        return latencies, time.process_time() - cpu
    finally:
        client.close()


def whole_proofs(address: str, signer_pid: int, seconds: float, workers: int) -> dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        signer_cpu = _cpu_seconds(signer_pid)
        results = pool.map(_proof_worker, [(address, seconds)] * workers)
        signer_cpu = _cpu_seconds(signer_pid) - signer_cpu
    latencies = [x for r, _ in results for x in r]
    summary = _summary(latencies, seconds)
    summary["worker_cpu_ms"] = sum(c for _, c in results) / len(latencies) * 1000
    summary["signer_cpu_ms"] = signer_cpu / len(latencies) * 1000
    return summary


def _row(name: str, r: dict[str, float] | str) -> None:
    if isinstance(r, str):
        print(f"{name:52s} | {r}")
    else:
        print(f"{name:52s} | {r['rate']:7.1f} | {r['p50_ms']:7.2f} | {r['p99_ms']:7.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--old", default=OLD, help="the commit whose renderer is the baseline")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lre-bench-pdf-"))
    dev_setup(work / "var")
    signer, address = run_signer(work / "var", processes=1)
    client = SignerClient(address, timeout_s=30)
    stub = client._stub
    try:
        print(f"machine: {os.cpu_count()} cores; {args.seconds:.0f} s per measurement")
        document = evidence(client)
        seal = client.seal(document)
        rendered = render_proof(document, seal)
        one_pass = proof_pdf(document, seal, client)
        old_signed = stub.SignPdf(signing_pb2.SignPdfRequest(pdf=rendered), timeout=30).signed_pdf
        print(
            f"proof size: {len(rendered)} bytes rendered, {len(one_pass)} signed in one pass, "
            f"{len(old_signed)} signed by SignPdf"
        )
        print()
        # Each rendering gets an evidence of its own, as in the server: Typst
        # keeps what it laid out between compilations, so the same evidence
        # again and again would measure its cache, not a proof.
        certificate = client.certificate_chain("seal")[0]
        fresh = [evidence(client, certificate) for _ in range(int(args.seconds * 400) + 2)]
        sealed = iter(list(zip(fresh, client.seal_many(fresh), strict=True)))
        print(f"{'rendering one proof (1 thread, this process)':52s} |     /s  |  p50 ms |  p99 ms")
        _row(
            "Typst (lre.server.proofs, PDF/A-3a + PDF/UA-1)",
            _loop(lambda: render_proof(*next(sealed)), args.seconds),
        )
        page = reportlab_page()
        _row(
            "ReportLab (same page, untagged)",
            _loop(lambda: page(*next(sealed)), args.seconds)
            if page
            else "skipped: reportlab not installed",
        )
        _row(
            f"WeasyPrint (the renderer of {args.old}, PDF/A-3u)",
            weasyprint_old(document, seal, args.seconds, args.old, work),
        )
        print()
        print(
            f"{'signing, 1 signer process, ' + str(args.concurrency) + ' callers':52s} |     /s  |  p50 ms |  p99 ms"
        )
        _row(
            "SignPdf (old path: pyHanko in the signer; baseline)",
            _concurrently(
                lambda: stub.SignPdf(signing_pb2.SignPdfRequest(pdf=rendered), timeout=30),
                args.seconds,
                args.concurrency,
            ),
        )
        data = client.pdf_validation_data()
        digest = os.urandom(32)
        _row(
            "SignPdfDigest (signature + timestamp only)",
            _concurrently(
                lambda: client.sign_pdf_digest(digest, data.id), args.seconds, args.concurrency
            ),
        )
        proof_signer = ProofSigner(client)
        _row(
            "one-pass signing (DSS + assembly here, SignPdfDigest)",
            _concurrently(
                lambda: proof_signer.sign(rendered, "LRE Development Seal"),
                args.seconds,
                args.concurrency,
            ),
        )
        print()
        print(
            f"{'whole proofs: seal + render + one-pass signing':52s} |     /s  |  p50 ms |  p99 ms | CPU ms/proof: workers + signer"
        )
        for w in args.workers:
            r = whole_proofs(address, signer.pid, args.seconds, w)
            print(f"{f'{w} worker process(es)':52s} | {r['rate']:7.1f} | {r['p50_ms']:7.2f} | "
                  f"{r['p99_ms']:7.2f} | {r['worker_cpu_ms']:.1f} + {r['signer_cpu_ms']:.1f}")  # fmt: skip
    finally:
        client.close()
        signer.terminate()
        signer.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
