"""Transport certificates read from files and read again when the files change.

cert-manager (or an operator) renews a certificate by replacing its files;
a process that read them once keeps presenting the old one until it expires,
and every mutual-TLS handshake then fails on the same day. So each user of a
certificate (a gRPC listener, the server's channel to the signer) asks
``refresh`` before it needs it: at most once a second the files' identities
(inode, size, modification time) are compared and, when they changed and the
new certificate and key belong together, the new ones become current (a half
-written renewal is not taken: the old pair stays until the new one is whole).
A background check once a minute keeps the expiry metric true on a process
that takes no new connections."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import Gauge

log = logging.getLogger("lre.runtime.certfiles")

EXPIRY = Gauge(
    "lre_transport_certificate_expiry_timestamp_seconds",
    "When the transport (TLS) certificate presented by this process expires",
    ["which"],
    multiprocess_mode="livemin",
)

CHECK_INTERVAL_S = 1.0
BACKGROUND_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Loaded:
    """One consistent reading of the files; ``generation`` grows with each change."""

    cert: bytes | None
    key: bytes | None
    ca: bytes | None
    generation: int
    serial: int | None
    not_after: float | None


def _identity(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    stat = os.stat(path)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class CertificateFiles:
    """A certificate and its key (optional for a client that presents none),
    and the CA that checks the peer (optional), under the metric label ``which``."""

    def __init__(
        self, which: str, cert: Path | None, key: Path | None, ca: Path | None = None
    ) -> None:
        self.which = which
        self._paths = (cert, key, ca)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._identities = tuple(_identity(p) for p in self._paths)
        self.current = self._read(0)  # raises on a bad start: refused before serving
        _watch(self)

    def _read(self, generation: int) -> Loaded:
        cert_path, key_path, ca_path = self._paths
        cert = cert_path.read_bytes() if cert_path else None
        key = key_path.read_bytes() if key_path else None
        ca = ca_path.read_bytes() if ca_path else None
        serial = not_after = None
        if cert is not None:
            leaf = x509.load_pem_x509_certificate(cert)
            if key is not None:
                private = serialization.load_pem_private_key(key, password=None)
                if private.public_key() != leaf.public_key():
                    raise ValueError(f"{cert_path}: not the certificate of {key_path}")
            serial, not_after = leaf.serial_number, leaf.not_valid_after_utc.timestamp()
            EXPIRY.labels(self.which).set(not_after)
        if ca is not None:
            x509.load_pem_x509_certificates(ca)
        return Loaded(cert, key, ca, generation, serial, not_after)

    def refresh(self, force: bool = False) -> Loaded:
        """The current reading, re-read first if the files changed (checked
        at most once a second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < CHECK_INTERVAL_S:
            return self.current
        with self._lock:
            self._checked = now
            try:
                identities = tuple(_identity(p) for p in self._paths)
                if identities == self._identities:
                    return self.current
                loaded = self._read(self.current.generation + 1)
            except (OSError, ValueError) as exc:
                # Mid-renewal (a file replaced, its partner not yet) or broken:
                # keep presenting the previous pair, and look again next time.
                log.warning(
                    "transport certificate files unusable; keeping the previous ones",
                    extra={"which": self.which, "error": str(exc)},
                )
                return self.current
            self._identities = identities
            self.current = loaded
            log.info(
                "transport certificate reloaded",
                extra={
                    "which": self.which,
                    "serial": f"{loaded.serial:x}" if loaded.serial else None,
                },
            )
            return loaded


_watched: weakref.WeakSet[CertificateFiles] = weakref.WeakSet()
_watcher: threading.Thread | None = None
_watch_lock = threading.Lock()


def _watch(files: CertificateFiles) -> None:
    global _watcher  # one thread for the process's few certificates
    with _watch_lock:
        _watched.add(files)
        if _watcher is None:
            _watcher = threading.Thread(target=_background, name="certfiles", daemon=True)
            _watcher.start()


def _background() -> None:
    while True:
        time.sleep(BACKGROUND_INTERVAL_S)
        with _watch_lock:
            watched = list(_watched)
        for files in watched:
            files.refresh()
