"""Several signer processes over one token, sharing the ports."""

from __future__ import annotations

import hashlib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from asn1crypto import algos, tsp
from prometheus_client.parser import text_string_to_metric_families

from lre.signer.devsetup import DevPaths
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import SERVING, health_status
from tests.support.signer import signer_env


def _query(i: int) -> bytes:
    return bytes(
        tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                    "hashed_message": hashlib.sha256(str(i).encode()).digest(),
                },
                "cert_req": True,
            }
        ).dump()
    )


def test_two_processes_serve_concurrent_timestamps_and_one_metrics_view(
    dev_var: DevPaths, tmp_path: Path
) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = signer_env(
        dev_var, grpc_port, http_port, LRE_SIGNER_PROCESSES="2", LRE_SIGNER_LOG_RPCS="false"
    )
    address = f"127.0.0.1:{grpc_port}"
    with running([str(BIN / "lre-signer"), "serve"], env, tmp_path / "signer.log") as pool:
        assert wait_for(lambda: health_status(address) == SERVING), (
            tmp_path / "signer.log"
        ).read_text()
        # Both workers, not only the first: each starts on its own (pyHanko's import is slow).
        assert wait_for(
            lambda: (tmp_path / "signer.log").read_text().count('"signer serving"') == 2
        ), (tmp_path / "signer.log").read_text()
        count = 400

        def stamp(i: int) -> tuple[str, int]:
            # A channel per call spreads connections over both processes.
            with grpc.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]
            ) as channel:
                reply = signing_pb2_grpc.SigningServiceStub(channel).Timestamp(
                    signing_pb2.TimestampRequest(time_stamp_req=_query(i)), timeout=20
                )
            token = tsp.TimeStampResp.load(reply.time_stamp_resp)["time_stamp_token"]
            info = token["content"]["encap_content_info"]["content"].parsed
            return info["message_imprint"]["hashed_message"].native.hex(), info[
                "serial_number"
            ].native

        with ThreadPoolExecutor(16) as executor:
            results = list(executor.map(stamp, range(count)))
        assert [r[0] for r in results] == [
            hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)
        ]
        assert len({r[1] for r in results}) == count
        assert pool.poll() is None

        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as reply:
            families = {f.name: f for f in text_string_to_metric_families(reply.read().decode())}
        granted = sum(
            s.value
            for s in families["lre_timestamps"].samples
            if s.labels.get("status") == "granted" and s.name.endswith("_total")
        )
        assert granted >= count  # plus the health probes' none: probes sign but issue no timestamp
        pids = {
            line
            for line in (tmp_path / "signer.log").read_text().splitlines()
            if '"signer serving"' in line
        }
        assert len(pids) == 2
