"""The HTTP ports of both processes (the signer's /tsa and /metrics, the
server's /metrics) on aiohttp's web server.

Why aiohttp rather than the standard library's http.server: it is maintained,
asyncio-based and used in production widely; its C parser (llhttp) frames
requests by the book (Transfer-Encoding with Content-Length, bad chunking,
oversized heads: 400, connection closed); it discards an unread body before
the next request on a keep-alive connection (or closes it); it answers 405
with ``Allow`` itself; and an idle connection costs a coroutine, not a thread.
It needs no ASGI layer (uvicorn, hypercorn), for two routes.

What this module adds: one bound socket per process, SO_REUSEPORT so that a
pool's processes share the port; TLS handshakes done by asyncio per
connection (never in the accept loop) and timed out; one deadline,
``timeout_s``, for a TLS handshake, for a whole request head (a client
trickling bytes is cut as one that sends nothing: aiohttp's idle timer is not
reset by data, only by a complete request), between requests on a keep-alive
connection and for reading a body; client mistakes logged as one JSON line at
INFO, without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from lre.runtime.pool import metrics_page

log = logging.getLogger("lre.http")


class _ClientErrors(logging.Filter):
    """aiohttp logs a malformed request (bad framing, oversized head) as an
    error with a traceback; it is the client's mistake: one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args, record.exc_info = "bad HTTP request", None, None
            record.status = exc.code
            record.reason = str(exc.message).splitlines()[0] if exc.message else ""
        return True


log.addFilter(_ClientErrors())


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body within ``timeout_s``; 413 above ``limit`` (on
    Content-Length before reading, else aiohttp's ``client_max_size`` while
    reading), 408 for a client too slow to send it. Both end the connection
    (after aiohttp's lingering read, so that the client gets the answer
    rather than a reset): what else it sends is not worth reading."""
    if request.content_length is not None and request.content_length > limit:
        raise _closing(
            web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        )
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise _closing(web.HTTPRequestTimeout(text="request body too slow\n")) from None


def _closing(error: web.HTTPException) -> web.HTTPException:
    error.force_close()
    return error


def metrics_route() -> web.RouteDef:
    async def metrics(_request: web.Request) -> web.Response:
        # Reading the pool's files is blocking I/O: off the event loop.
        page = await asyncio.to_thread(metrics_page)
        return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return web.get("/metrics", metrics)


def _listen(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The processes of a pool share the port; the kernel spreads connections.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, int(port)))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class HttpServer:
    """An aiohttp application on its own thread and event loop, so that the
    rest of the process (gRPC threads, workers) stays as it is."""

    def __init__(
        self,
        routes: list[web.RouteDef],
        address: str,
        context: ssl.SSLContext | None,
        timeout_s: float,
        client_max_size: int = 1024,
        name: str = "http",
    ) -> None:
        self._app = web.Application(client_max_size=client_max_size)
        self._app.add_routes(routes)
        self._context = context
        self._timeout_s = timeout_s
        self._socket = _listen(address)
        self.port: int = self._socket.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError(f"{self._thread.name}: the HTTP server did not start")
        if self._failed is not None:
            raise RuntimeError(f"{self._thread.name}: the HTTP server did not start") from (
                self._failed
            )

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=self._timeout_s + 5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as exc:
            log.exception("HTTP server failed", extra={"server": self._thread.name})
            self._failed = exc  # start() raises it when it has not returned yet
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        runner = web.AppRunner(
            self._app,
            handle_signals=False,
            access_log=None,  # a line per scrape or timestamp is noise
            logger=log,
            # Also the deadline for a request head: the timer starts when the
            # connection is made and only a complete request resets it.
            keepalive_timeout=self._timeout_s,
            # Unread bodies (404, 415...) are read and discarded for at most
            # this long before the next request; else the connection closes.
            lingering_time=self._timeout_s,
            # On stop: requests in flight get this long to finish.
            shutdown_timeout=self._timeout_s,
        )
        await runner.setup()
        assert runner.server is not None  # set by setup()
        # asyncio sets TCP_NODELAY on every TCP transport and aiohttp writes a
        # small response (head and body) in one send: no Nagle delay.
        server = await self._loop.create_server(
            runner.server,
            sock=self._socket,
            ssl=self._context,
            ssl_handshake_timeout=self._timeout_s if self._context else None,
            ssl_shutdown_timeout=self._timeout_s if self._context else None,
        )
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            await runner.cleanup()
