"""The composition root: the one place that names concrete adapters (the
database engine, the signer's client, the mail transport, the clock) and
wires them into the services, the workers and the gRPC servicers
(``wiring``), then runs them as a process (``process``)."""

from lre.server.bootstrap.process import Server, build, serve, signer_client, work

__all__ = ["Server", "build", "serve", "signer_client", "work"]
