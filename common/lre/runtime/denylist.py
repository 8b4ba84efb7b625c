"""Transport certificates an operator has denied, without a restart: a file
of entries, one a line (``#`` comments), each the SHA-256 fingerprint of a
client certificate (hex, colons allowed) or a DNS name it carries. The file
is read again when it changes (looked at once a second at most); a file that
cannot be read keeps the last list (and says so once). The admission gate
refuses a denied caller with PERMISSION_DENIED before anything else."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lre.runtime.callers import certificate_names

log = logging.getLogger("lre.rpc")
RECHECK_S = 1.0


class DenyList:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._entries: frozenset[str] = frozenset()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        if self._path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_S:
            return
        self._checked = now
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            stamp, text = (0, 0), ""
        except OSError as exc:
            if self._stamp is not None:
                log.warning("deny list unreadable; the last one stays", extra={"error": str(exc)})
            self._stamp = None
            return
        entries = set()
        for line in text.splitlines():
            entry = line.split("#", 1)[0].strip().lower()
            if entry:
                entries.add(entry.replace(":", "") if _fingerprint_like(entry) else entry)
        self._entries, self._stamp = frozenset(entries), stamp
        log.info("deny list loaded", extra={"entries": len(entries)})

    def denied(self, context: grpc.ServicerContext) -> bool:
        with self._lock:
            self._refresh()
            entries = self._entries
        if not entries:
            return False
        if entries & set(certificate_names(context)):
            return True
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            return False
        certificate = x509.load_pem_x509_certificate(bytes(pems[0]))
        der = certificate.public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).hexdigest() in entries


def _fingerprint_like(entry: str) -> bool:
    bare = entry.replace(":", "")
    return len(bare) == 64 and all(c in "0123456789abcdef" for c in bare)
