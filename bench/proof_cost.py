"""What making PDF proofs costs deposits (issue 17): the saturated deposit
rate of one server process without its workers (nothing but deposits), then
with them (the outbox sends each notice and each sender's proof of deposit,
whose PDF it renders, has the signer sign, and stores; the sequencer and
tree heads run too), measured in the same run on fresh stacks.

PostgreSQL, one server process, one signer process, mail to a Maildir,
bounded in time. Prints deposits/s with p50/p99 for both, the ratio, and the
proof PDFs made during the busy window (lre_proof_pdfs_made on the server's
/metrics). Usage:
  python bench/proof_cost.py [--seconds 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deposit_throughput import deposits
from bench.stack import POSTGRES, running_stack
from tests.support import free_port


def _made(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    found = re.search(r"^lre_proof_pdfs_made_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _run(seconds: float, postgres: str, workers: bool) -> tuple[dict[str, float], float]:
    metrics = f"127.0.0.1:{free_port()}"
    with running_stack(
        server_processes=1,
        signer_processes=1,
        postgres=postgres,
        run_workers=workers,
        settings={"LRE_SERVER_OUTBOX_INTERVAL_S": "0.2", "LRE_SERVER_METRICS_ADDRESS": metrics},
    ) as stack:
        url = f"http://{metrics}/metrics"
        before, start = _made(url), time.perf_counter()
        result = deposits(stack.address, stack.sender_token, stack.recipient, seconds)
        rate = (_made(url) - before) / (time.perf_counter() - start)
    return result, rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    idle, idle_pdfs = _run(args.seconds, args.postgres, workers=False)
    busy, busy_pdfs = _run(args.seconds, args.postgres, workers=True)
    print(f"machine: {os.cpu_count()} cores; 1 server process, 1 signer process; "
          f"PostgreSQL; {args.seconds:.0f} s each")  # fmt: skip
    for label, result, pdfs in (
        ("workers off (deposits only)", idle, idle_pdfs),
        ("workers on (notices, proof PDFs)", busy, busy_pdfs),
    ):
        print(
            f"{label:35} {result['rate']:6.1f} deposits/s  p50 {result['p50_ms']:6.1f} ms"
            f"  p99 {result['p99_ms']:7.1f} ms  PDF proofs made {pdfs:4.1f}/s"
        )
    print(f"ratio on/off: {busy['rate'] / idle['rate']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
