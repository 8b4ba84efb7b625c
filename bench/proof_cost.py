"""What making PDF proofs costs deposits: the saturated deposit
rate of one server process without its workers (nothing but deposits), then
with them (the outbox sends each notice and each sender's proof of deposit,
whose PDF it renders, has the signer sign, and stores; the sequencer and
tree heads run too), measured in the same run on fresh stacks.

Then, on a third fresh stack with the workers on, letters offered at a
quarter of the workers-off rate for ``--hold`` seconds: how long after its
deposit each sender's proof-of-deposit e-mail (with its PDF) and each
recipient's notice were handed to the mail server (the outbox rows'
``sent_time`` against the letters' ``deposit_time``; one still unsent 30 s
after the load counts as never), and the outbox backlog sampled every 5 s.

PostgreSQL, two server processes and two signer processes (as
bench/deposit_throughput.py), the workers in the server's processes or, with
``--work-processes``, in ``lre-server work`` processes of their own (at
``--work-nice``, as lre-workers.service runs them), mail to a Maildir,
bounded in time. Prints deposits/s with p50/p99 for both, the ratio, and the
proof PDFs made during the busy window (lre_proof_pdfs_made on the server's
/metrics). Usage:
  python bench/proof_cost.py [--seconds 10] [--hold 300] [--rate R] [--postgres URL]
      [--work-processes N] [--work-nice K]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deposit_throughput import deposits
from bench.stack import POSTGRES, busy_seconds, running_stack


def _made(addresses: tuple[str, ...]) -> float:
    made = 0.0
    for address in addresses:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
            text = response.read().decode()
        found = re.search(r"^lre_proof_pdfs_made_total (\S+)$", text, re.MULTILINE)
        made += float(found.group(1)) if found else 0.0
    return made


# Messages due and not yet handed off (the server's gauge is refreshed only
# when a dispatcher is idle, so it is read from the table; reminders wait
# for their day and are not counted).
BACKLOG = text(
    "SELECT count(*) FROM outbox_messages"
    " WHERE state IN ('pending', 'sending') AND next_attempt_time <= now()"
)


# The hand-off of each outbox message of a kind after its letter's deposit,
# in seconds (NULL: not handed off).
DELAYS = text(
    "SELECT EXTRACT(EPOCH FROM o.sent_time - l.deposit_time) FROM outbox_messages o"
    " JOIN letters l ON l.id = o.letter_id WHERE o.kind = :kind"
)


def _stack(postgres: str, workers: bool, placement: tuple[int, int]) -> Any:
    """Two server and two signer processes; the workers in the server's
    processes, or in ``placement[0]`` processes of their own at niceness
    ``placement[1]`` (as the deploy kit runs them)."""
    return running_stack(
        server_processes=2,
        signer_processes=2,
        postgres=postgres,
        run_workers=workers,
        settings={"LRE_SERVER_OUTBOX_INTERVAL_S": "0.2"},
        work_processes=placement[0] if workers else 0,
        work_nice=placement[1],
    )


def _paced(
    seconds: float, postgres: str, rate: float, placement: tuple[int, int]
) -> dict[str, object]:
    """Workers on, ``rate`` letters/s offered for ``seconds``: the hand-off
    delays of the proofs of deposit and of the notices, the backlog sampled."""
    with _stack(postgres, True, placement) as stack:
        engine = create_engine(stack.database_url)
        samples: list[int] = []
        done = threading.Event()

        def backlog() -> int:
            with engine.connect() as connection:
                return int(connection.execute(BACKLOG).scalar_one())

        def sample() -> None:
            while not done.wait(5.0):
                samples.append(backlog())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        busy = busy_seconds()
        result = deposits(stack.address, stack.sender_token, stack.recipient, seconds, rate=rate)
        done.set()
        drain_until = time.monotonic() + 30
        while time.monotonic() < drain_until and backlog() > 0:
            time.sleep(1)
        busy = busy_seconds() - busy
        drained = backlog() == 0
        with engine.connect() as connection:
            delays = {
                kind: sorted(
                    float("inf") if d is None else float(d)
                    for (d,) in connection.execute(DELAYS, {"kind": kind})
                )
                for kind in ("proof", "letter_waiting")
            }
        engine.dispose()
    summary: dict[str, object] = {
        **result,
        "backlog": samples,
        "busy_ms": busy / max(1, int(result["count"])) * 1000,
        "drained": drained,
    }
    for kind, values in delays.items():
        summary[kind] = {
            "count": len(values),
            "p50": statistics.median(values) if values else None,
            "p90": values[int(len(values) * 0.9)] if values else None,
            "max": values[-1] if values else None,
        }
    return summary


def _run(
    seconds: float, postgres: str, workers: bool, placement: tuple[int, int]
) -> tuple[dict[str, float], float]:
    with _stack(postgres, workers, placement) as stack:
        url = stack.worker_metrics
        before, start, busy = _made(url), time.perf_counter(), busy_seconds()
        result = deposits(stack.address, stack.sender_token, stack.recipient, seconds)
        rate = (_made(url) - before) / (time.perf_counter() - start)
        result["busy_ms"] = (busy_seconds() - busy) / max(1, result["count"]) * 1000
    return result, rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=300.0)
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument(
        "--work-processes",
        type=int,
        default=0,
        help="run the workers in this many `lre-server work` processes (default: in the server's)",
    )
    parser.add_argument("--work-nice", type=int, default=0, help="those processes' niceness")
    parser.add_argument("--phase", choices=["off", "on", "paced"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--rate",
        type=float,
        help="letters/s in the paced phase (default: a quarter of the workers-off rate)",
    )
    args = parser.parse_args()
    placement = (args.work_processes, args.work_nice)
    where = ["--work-processes", str(args.work_processes), "--work-nice", str(args.work_nice)]
    if args.phase == "paced":
        print(json.dumps(_paced(args.hold, args.postgres, args.rate, placement)))
        return 0
    if args.phase:  # one stack, in a process of its own (the token library is per process)
        result, pdfs = _run(args.seconds, args.postgres, args.phase == "on", placement)
        print(json.dumps({**result, "pdfs": pdfs}))
        return 0
    phases = {}
    for phase in ("off", "on"):
        run = subprocess.run(
            [sys.executable, __file__, "--seconds", str(args.seconds), "--postgres",
             args.postgres, "--phase", phase, *where],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        phases[phase] = json.loads(run.stdout.strip().splitlines()[-1])
    workers = (
        f"in {args.work_processes} `lre-server work` processes at nice {args.work_nice}"
        if args.work_processes
        else "in the server's processes"
    )
    print(f"machine: {os.cpu_count()} cores; 2 server processes, 2 signer processes; "
          f"PostgreSQL; {args.seconds:.0f} s each; workers {workers}")  # fmt: skip
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
    print(
        f"machine CPU per deposit, workers off (all processes): {phases['off']['busy_ms']:.1f} ms"
    )
    rate = args.rate or phases["off"]["rate"] / 4
    run = subprocess.run(
        [sys.executable, __file__, "--hold", str(args.hold), "--postgres", args.postgres,
         "--phase", "paced", "--rate", f"{rate:.2f}", *where],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    paced = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"workers on, {rate:.1f} letters/s offered for {args.hold:.0f} s:"
        f" {paced['rate']:.1f} deposits/s, p99 {paced['p99_ms']:.1f} ms"
    )
    for kind, label in (("proof", "proof of deposit e-mail"), ("letter_waiting", "notice")):
        d = paced[kind]
        print(
            f"  {label:25} {d['count']:6d} handed off after deposit:"
            f" p50 {d['p50']:.2f} s  p90 {d['p90']:.2f} s  max {d['max']:.2f} s"
        )
    print(
        f"  machine CPU per letter, deposit + notice + proof, until drained:"
        f" {paced['busy_ms']:.1f} ms"
        + ("" if paced["drained"] else " (not drained 30 s after the load: a floor)")
    )
    backlog = paced["backlog"]
    print(f"  outbox backlog every 5 s: max {max(backlog, default=0):.0f}, samples {backlog}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
