"""Serving a gRPC process: health per service, reflection when configured,
metrics and one log line per RPC, and a graceful stop on SIGTERM/SIGINT.

Every RPC, health and reflection included, passes one gate
(lre.runtime.gate) that holds the error contract of both processes: the
guard (authorization) first, then the budgets of long calls, then the
request decoded and validated (INVALID_ARGUMENT, with the field), a bug
answered INTERNAL with a request id, a client that went away recorded as
CANCELLED or DEADLINE_EXCEEDED, and no call waiting on its client beyond the
limits of lre.runtime.limits."""

from __future__ import annotations

import dataclasses
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lre.runtime import fields, grpc_metrics, reflection_v1
from lre.runtime.calls import Validator
from lre.runtime.denylist import DenyList
from lre.runtime.gate import REQUEST_ID_KEY, Guard, RoleOf, RpcInterceptor
from lre.runtime.limits import Admission, StreamLimits, Watchdog

log = logging.getLogger("lre.rpc")

__all__ = ["REQUEST_ID_KEY", "GrpcProcess", "Guard", "ServiceBinding", "wait_for_signal"]
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer and how to register it."""

    full_name: str
    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: object


MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024


def _allow_all(_method: str, _context: grpc.ServicerContext) -> None:
    pass


def _no_role(_context: grpc.ServicerContext) -> str:
    return "any"


class GrpcProcess:
    """A gRPC server with health (and reflection when asked) for the given services."""

    def __init__(
        self,
        services: Iterable[ServiceBinding],
        address: str,
        max_workers: int = 16,
        log_rpcs: bool = True,
        guard: Guard = _allow_all,
        credentials: grpc.ServerCredentials | None = None,
        validate: Validator | None = None,
        limits: StreamLimits | None = None,
        health_address: str | None = None,
        reflection_enabled: bool = False,
        role_of: RoleOf = _no_role,
        max_concurrent_rpcs: int | None = None,
        deny: DenyList | None = None,
    ) -> None:
        """``credentials``: TLS (mutual when they demand client certificates);
        None listens in plaintext. ``validate``: the check of every request
        message (lre.runtime.fields; by default its rules for any string).
        ``health_address``: a second, plaintext listener serving grpc.health.v1
        Check and nothing else, for probes that cannot present a client
        certificate (the kubelet's). ``reflection_enabled``: serve
        grpc.reflection (off in production unless configured: it tells anyone
        every method). ``role_of``: the caller's role as the refusal metric
        names it. ``max_concurrent_rpcs``: beyond it gRPC refuses a call
        before any thread takes it (default 8 per thread): the backstop when
        calls come faster than the threads end them. ``deny``: client
        certificates refused before anything else (lre.runtime.denylist)."""
        self.services = list(services)
        names = [b.full_name for b in self.services]
        methods = grpc_metrics.for_services([*names, HEALTH])
        self.limits = limits or StreamLimits()
        streams = max(1, max_workers - self.limits.reserved_threads)
        self._watchdog = Watchdog(tick_s=min(0.25, self.limits.idle_s / 10))
        validate = validate or fields.validator()
        interceptor = RpcInterceptor(
            methods,
            log_rpcs,
            guard,
            validate,
            self.limits,
            Admission(self.limits, streams),
            self._watchdog,
            role_of,
            deny,
        )
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            interceptors=[interceptor],
            options=[
                ("grpc.so_reuseport", 1),
                # A message carries at most a 1 MiB content chunk and its envelope.
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ],
            maximum_concurrent_rpcs=max_concurrent_rpcs or 8 * max_workers,
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for binding in self.services:
            binding.add_to_server(binding.servicer, self.server)
        if reflection_enabled:
            listed = [*names, HEALTH, reflection.SERVICE_NAME, reflection_v1.SERVICE_NAME]
            reflection.enable_server_reflection(listed, self.server)
            reflection_v1.enable(listed, self.server)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC to {address}")
        # The same health servicer, so both listeners tell the same state,
        # behind a gate of its own (probes are few and quick): no guard, no
        # reflection, no Watch (a probe asks; a watcher would hold one of its
        # threads), an unknown method UNIMPLEMENTED.
        self.health_server: grpc.Server | None = None
        self.health_port: int | None = None
        if health_address:
            probe_limits = dataclasses.replace(
                self.limits, idle_s=min(self.limits.idle_s, 5.0), per_caller=1, watches=0
            )
            self.health_server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health"),
                interceptors=[
                    RpcInterceptor(
                        grpc_metrics.for_services([HEALTH]),
                        False,
                        _allow_all,
                        validate,
                        probe_limits,
                        Admission(probe_limits, 2),
                        self._watchdog,
                        _no_role,
                    )
                ],
                options=[("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 4096)],
                maximum_concurrent_rpcs=64,
            )
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = self.health_server.add_insecure_port(health_address)
            if self.health_port == 0:
                raise OSError(f"cannot bind gRPC health to {health_address}")

    def set_serving(self, serving: bool, service: str | None = None) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        targets = [service] if service is not None else ["", *(b.full_name for b in self.services)]
        for name in targets:
            self.health.set(name, status)

    def start(self) -> None:
        # What the process built before serving lives as long as it does: out
        # of the collector's full passes, which otherwise walk it all and, under
        # load, stalled every call in the process for 50-85 ms (docs/performance.md).
        gc.freeze()
        self._watchdog.start()
        self.server.start()
        if self.health_server is not None:
            self.health_server.start()

    def stop(self, grace: float, drain: float = 0.0) -> None:
        """NOT_SERVING for ``drain`` seconds while still taking calls, so that
        load balancers that check health move away; then no new calls, and
        ``grace`` seconds for those in flight to finish."""
        self.health.enter_graceful_shutdown()
        time.sleep(drain)
        self.server.stop(grace).wait()
        self._watchdog.stop()
        if self.health_server is not None:
            self.health_server.stop(0).wait()


def wait_for_signal() -> int:
    """Blocks until SIGTERM or SIGINT; returns the signal number."""
    received: list[int] = []
    done = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    # Short waits: the kernel may deliver the signal to any thread (gRPC's,
    # a PDF engine's), and Python runs the handler only when the main thread
    # next runs, which a long wait on a lock would put off until it ends.
    while not done.wait(0.5):
        pass
    return received[0]
