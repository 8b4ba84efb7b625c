"""One instance per port.

Every listener sets SO_REUSEPORT so that the processes of a pool share a
port, which also lets a second instance of the same user bind beside the
first and silently take half of its connections. So an instance claims its
ports before it listens:

* a lock per port: a Unix socket bound in the abstract namespace
  (``\\0lre-port-N``). The kernel refuses a second bind of the name and frees
  it when its holder dies, however it dies (no stale lock file, no runtime
  directory to agree on), and the abstract namespace belongs to the network
  namespace, as the TCP port does: two containers each have their own. A
  process whose ancestor holds the lock (the supervisor of its pool, or
  ``make run``'s launcher) is part of that instance and goes on;
* a probe: the TCP address bound once without SO_REUSEPORT, which fails
  while anything else listens there (another program, or any process of
  another instance), then closed before the listeners open.

Linux only (abstract sockets, SO_PEERCRED, /proc), as the deployment is."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field


class PortTaken(Exception):
    """A port this instance needs is held elsewhere; the message is one line."""


def _port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _ancestors() -> set[int]:
    found: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def _holder(name: bytes) -> int | None:
    """The pid of the process that holds the lock ``name``, None if nobody does."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(name)
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        except OSError:
            return 0  # held, by whom unknown
        pid, _uid, _gid = struct.unpack(
            "3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        )
        return int(pid)


def _serve_lock(sock: socket.socket) -> None:
    # Accept and drop the members' look-ups, so that they never fill the backlog.
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.close()


def _probe(setting: str, address: str) -> None:
    host, port = _port(address)
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise PortTaken(f"{setting} {address}: cannot resolve {host!r}: {exc.strerror}") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            # SO_REUSEADDR: a connection of a previous run in TIME_WAIT is no
            # listener; without SO_REUSEPORT, any listener is a conflict.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    reason = "the port is in use by another program"
                elif exc.errno == errno.EACCES:
                    reason = "permission denied (a port below 1024 needs privilege)"
                elif exc.errno == errno.EADDRNOTAVAIL:
                    reason = "no such local address"
                else:
                    reason = exc.strerror or type(exc).__name__
                raise PortTaken(f"cannot listen on {setting} {address}: {reason}") from None


def _lock(name: bytes) -> socket.socket | None:
    """The lock ``name`` taken, or None while another process holds it."""
    for _ in range(2):  # once more if its holder was just exiting
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lock.bind(name)
        except OSError as exc:
            lock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            if _holder(name) is not None:
                return None
            continue
        lock.listen(16)
        return lock
    return None


@dataclass
class PortClaim:
    """The locks this process holds; they last as long as the process (or ``release``)."""

    ports: list[int] = field(default_factory=list)
    _locks: list[socket.socket] = field(default_factory=list)

    def release(self) -> None:
        for lock in self._locks:
            with contextlib.suppress(OSError):
                lock.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
            lock.close()
        self._locks.clear()


def claim(addresses: Mapping[str, str]) -> PortClaim:
    """Claims the ports of ``addresses`` (setting name → "host:port") for this
    instance, or raises PortTaken naming the setting. Ports 0 (chosen by the
    kernel) and empty addresses (a listener turned off) need no claim."""
    result = PortClaim()
    ancestors = _ancestors()
    try:
        for setting, address in addresses.items():
            if not address:
                continue
            _, port = _port(address)
            if port == 0 or port in result.ports:
                continue
            name = f"\0lre-port-{port}".encode()
            lock = _lock(name)
            if lock is None:
                holder = _holder(name)
                if holder in ancestors:
                    continue  # a member of the instance that holds it
                who = f" (pid {holder})" if holder else ""
                raise PortTaken(
                    f"{setting} {address}: port {port} is held by another LRE instance{who}; "
                    "stop it or choose other ports"
                )
            result._locks.append(lock)
            result.ports.append(port)
            threading.Thread(
                target=_serve_lock, args=(lock,), name="port-lock", daemon=True
            ).start()
            _probe(setting, address)
    except BaseException:
        result.release()
        raise
    return result
