"""HTTP side of the signer: RFC 3161 transport at /tsa (RFC 3161 section 3.4),
Prometheus at /metrics (on its own listener when metrics_address is set), on
the shared aiohttp server (lre.runtime.http)."""

from __future__ import annotations

import asyncio
import ssl

from aiohttp import web

from lre.runtime.http import HttpServer, metrics_route, read_body
from lre.signer.app import Signer
from lre.signer.errors import TokenUnavailable

MAX_QUERY_BYTES = 16 * 1024
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


def tsa_route(signer: Signer, timeout_s: float) -> web.RouteDef:
    def respond(query: bytes) -> bytes:
        return signer.tsa.respond(query)

    async def timestamp(request: web.Request) -> web.Response:
        if request.content_type != QUERY_TYPE:
            # The body is discarded by aiohttp before the next request.
            raise web.HTTPUnsupportedMediaType(text=f"expected {QUERY_TYPE}\n")
        query = await read_body(request, MAX_QUERY_BYTES, timeout_s)
        try:
            # PKCS#11 calls block: on the loop's threads, never on the loop.
            reply = await asyncio.get_running_loop().run_in_executor(None, respond, query)
        except TokenUnavailable:
            raise web.HTTPServiceUnavailable(
                text="the TSA cannot sign now\n", headers={"Retry-After": "5"}
            ) from None
        return web.Response(body=reply, content_type=REPLY_TYPE)

    # Only POST is routed: aiohttp answers GET /tsa with 405 and Allow: POST.
    return web.post("/tsa", timestamp)


def http_server(
    signer: Signer,
    address: str,
    context: ssl.SSLContext | None,
    timeout_s: float,
    with_metrics: bool = True,
) -> HttpServer:
    """/tsa, and /metrics unless it has a listener of its own."""
    routes = [tsa_route(signer, timeout_s)] + ([metrics_route()] if with_metrics else [])
    return HttpServer(
        routes, address, context, timeout_s, client_max_size=MAX_QUERY_BYTES, name="http"
    )


def metrics_server(address: str, context: ssl.SSLContext | None, timeout_s: float) -> HttpServer:
    """/metrics alone, apart from the /tsa port that TSA clients may reach."""
    return HttpServer([metrics_route()], address, context, timeout_s, name="metrics")
