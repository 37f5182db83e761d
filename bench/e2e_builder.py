"""The local builder endpoint of bench/agent_e2e.py, run as a process of its own.

It is testbed/arb.py's LocalBuilder (a real aiohttp server on 127.0.0.1 that recovers the
X-Flashbots-Signature signer and includes each bundle by forwarding its transactions to the node),
plus the moment each request arrived. That moment is taken with time.perf_counter_ns, which on Linux
is CLOCK_MONOTONIC in every process, so the driver can subtract its own t0 from it. The builder has
its own process because in the searcher's it would be stamped only when the searcher's event loop
(and GIL) got round to it.

Prints `url <url>` once listening, then for every eth_sendBundle, once handled (forwarded):
`bundle <received_ns> <target block> <first tx hash> <recovered signer>`.

    python bench/e2e_builder.py http://127.0.0.1:<anvil port>
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import orjson
from aiohttp import web
from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testbed/, the local worlds

from testbed.arb import BuilderBehaviour, LocalBuilder


async def serve(node_url: str) -> None:
    builder = LocalBuilder(BuilderBehaviour("bench", include=True), node_url)

    async def handle(request: web.Request) -> web.StreamResponse:
        received_ns = time.perf_counter_ns()  # before anything else: this is the figure
        response = await builder.handle(request)  # reads the (cached) body again, forwards, answers
        payload = orjson.loads(await request.read())
        if payload["method"] == "eth_sendBundle":
            params = payload["params"][0]
            # Concurrent handlers interleave: find this request's record by its params, not by position.
            signer = next((r.signer for r in reversed(builder.received) if r.params == params), "")
            tx_hash = "0x" + keccak(hexstr=params["txs"][0]).hex()
            print(f"bundle {received_ns} {int(params['blockNumber'], 16)} {tx_hash} {signer}", flush=True)
        return response

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"url http://127.0.0.1:{port}/", flush=True)
    try:
        await asyncio.Event().wait()  # until the driver terminates the process
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].startswith("http://127.0.0.1:"):
        sys.exit("usage: e2e_builder.py http://127.0.0.1:<node port>  (loopback only)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sys.argv[1]))
