"""What making PDF proofs costs deposits: the saturated deposit
rate of one server process without its workers (nothing but deposits), then
with them (the outbox sends each notice and each sender's proof of deposit,
whose PDF it renders, has the signer sign, and stores; the sequencer and
tree heads run too), measured in the same run on fresh stacks.

PostgreSQL, two server processes and two signer processes (as
bench/deposit_throughput.py), mail to a Maildir,
bounded in time. Prints deposits/s with p50/p99 for both, the ratio, and the
proof PDFs made during the busy window (lre_proof_pdfs_made on the server's
/metrics). Usage:
  python bench/proof_cost.py [--seconds 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deposit_throughput import deposits
from bench.stack import POSTGRES, running_stack
from tests.support.processes import free_port


def _made(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    found = re.search(r"^lre_proof_pdfs_made_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _run(seconds: float, postgres: str, workers: bool) -> tuple[dict[str, float], float]:
    metrics = f"127.0.0.1:{free_port()}"
    with running_stack(
        server_processes=2,
        signer_processes=2,
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
    parser.add_argument("--phase", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # one stack, in a process of its own (the token library is per process)
        result, pdfs = _run(args.seconds, args.postgres, workers=args.phase == "on")
        print(json.dumps({**result, "pdfs": pdfs}))
        return 0
    phases = {}
    for phase in ("off", "on"):
        run = subprocess.run(
            [sys.executable, __file__, "--seconds", str(args.seconds), "--postgres",
             args.postgres, "--phase", phase],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        phases[phase] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"machine: {os.cpu_count()} cores; 2 server processes, 2 signer processes; "
          f"PostgreSQL; {args.seconds:.0f} s each")  # fmt: skip
    for label, phase in (
        ("workers off (deposits only)", "off"),
        ("workers on (notices, proof PDFs)", "on"),
    ):
        r = phases[phase]
        print(
            f"{label:35} {r['rate']:6.1f} deposits/s  p50 {r['p50_ms']:6.1f} ms"
            f"  p99 {r['p99_ms']:7.1f} ms  PDF proofs made {r['pdfs']:4.1f}/s"
        )
    print(f"ratio on/off: {phases['on']['rate'] / phases['off']['rate']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
