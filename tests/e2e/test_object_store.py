"""The real server process with its content in a real SeaweedFS server: a
deposit over gRPC lands in the bucket; the store killed by its process id,
a deposit fails UNAVAILABLE leaving no letter, health takes custody out of
service and the log says why; started again, both come back. The metrics
count the store's requests."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, func, select

from lre.server.storage import models
from lre.v1 import custody_pb2_grpc, identity_pb2_grpc
from tests.support.clients import deposit_letter, register_company
from tests.support.processes import wait_for
from tests.support.rpc import NOT_SERVING, SERVING, health_status
from tests.support.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedServer, seaweed_server
from tests.support.server import CUSTODY, server_process
from tests.support.signer import SignerProcess


@pytest.fixture
def own(tmp_path: Path) -> Iterator[SeaweedServer]:
    with seaweed_server(tmp_path / "seaweed") as server:
        yield server


def test_deposits_go_to_the_object_store_and_fail_cleanly_while_it_is_down(
    signer_process: SignerProcess, tmp_path: Path, own: SeaweedServer
) -> None:
    bucket = own.new_bucket()
    (tmp_path / "s3-access").write_text(ACCESS_KEY)
    (tmp_path / "s3-secret").write_text(SECRET_KEY)
    database_url = f"sqlite:///{tmp_path / 'lre.db'}"
    with (
        server_process(
            signer_process,
            tmp_path,
            database_url,
            content_store="s3",
            s3_endpoint_url=own.endpoint,
            s3_bucket=bucket,
            s3_path_style="true",
            s3_access_key_file=str(tmp_path / "s3-access"),
            s3_secret_key_file=str(tmp_path / "s3-secret"),
            s3_timeout_s="2",
            health_check_interval_s="0.5",
        ) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        custody = custody_pb2_grpc.CustodyServiceStub(channel)
        _, token = register_company(
            identity, server.enrolment_codes, "se", "Envoi SARL", "envoi@example.org"
        )
        recipient, _ = register_company(
            identity, server.enrolment_codes, "rc", "Dest SA", "courrier@dest.example"
        )
        first = deposit_letter(custody, token, recipient, "first")
        engine = create_engine(database_url)
        with engine.connect() as connection:
            key = connection.scalar(select(models.Letter.content_object))
            chunks = connection.scalar(select(func.count()).select_from(models.ContentChunk))
        assert key is not None and chunks == 0
        assert [o["Key"] for o in own.client().list_objects_v2(Bucket=bucket)["Contents"]] == [key]
        assert first.name.removeprefix("letters/") not in key

        own.stop(grace_s=0)
        with pytest.raises(grpc.RpcError) as failed:
            deposit_letter(custody, token, recipient, "while-down")
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "object store is unreachable" in (failed.value.details() or "")
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(models.Letter)) == 1
        assert wait_for(lambda: health_status(server.address, CUSTODY) == NOT_SERVING, timeout=15)
        assert wait_for(lambda: "object store not serving" in server.log.read_text(), timeout=5)
        assert "the object store is unreachable" in server.log.read_text()

        own.start()
        assert wait_for(lambda: health_status(server.address, CUSTODY) == SERVING, timeout=15)
        deposit_letter(custody, token, recipient, "again")
        with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
            metrics = reply.read().decode()
        assert 'lre_object_store_requests_total{operation="put_object",outcome="ok"}' in metrics
        assert 'lre_object_store_bytes_total{direction="out"}' in metrics
        assert 'outcome="error"' in metrics and "lre_object_store_request_seconds_bucket" in metrics
        assert "lre_object_store_up 1.0" in metrics
        engine.dispose()
