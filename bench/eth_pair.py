"""The devnet's real Ethereum pair next to anvil: release build/unpack time, memory, and the latency from
a block being on the node to the agent's RPC client being told of it.

Both nodes run on this machine's loopback, from the same artifacts and flags a deploy uses: the npm
bundles (nodes/npm.py, built or taken from ~/.cache/mevfleet/npm) unpacked into a temporary release dir,
the unit's arguments from the host plan of a one-host inventory at 127.0.0.1 (ports moved to free ones),
the genesis made as the units make it (testbed/ethpair.py, which the agent's end-to-end test
on the pair uses too). anvil (the stand-in every other chain runs) mines every 4 s, like the pair's 4 s slots.

Latency: the agent's client (mevagent.rpc) follows each node as the agent does: anvil over its IPC socket
(newHeads pushed), EthereumJS over HTTP (it has neither IPC nor eth_subscribe: heads polled every
`poll_interval`, the agent's default). The reference moment a block is on the node is the first answer
naming it to a separate 5 ms eth_blockNumber poller over HTTP; latency = the client's notification
minus that (negative when a push beats the poller: the reference resolves ~5 ms). Same method on both
nodes, side by side.

Usage: .venv/bin/python bench/eth_pair.py [--blocks N]    (about 2-3 minutes; builds the bundles first
if they are not cached: minutes more)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

from figures import pct  # noqa: E402

from mevagent.rpc import connect  # noqa: E402
from testbed.ethpair import EL, LocalPair, free_port, stop  # noqa: E402
from testbed.evm import ANVIL, anvil_env  # noqa: E402

POLLER_MS = 5


def rss_mib(procs: list[subprocess.Popen]) -> float:
    total = 0
    for proc in procs:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return total / 1024


async def first_seen(http: str, seen: dict[int, int], stop_at: asyncio.Event) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    async with aiohttp.ClientSession() as session:
        while not stop_at.is_set():
            try:
                async with session.post(http, json=body) as answer:
                    number = int((await answer.json())["result"], 16)
                seen.setdefault(number, time.perf_counter_ns())
            except (aiohttp.ClientError, KeyError, ValueError):
                pass
            await asyncio.sleep(POLLER_MS / 1000)


async def head_latency(endpoint: str, http: str, blocks: int) -> list[float]:
    """ms from the poller's first sight of each block to the agent client's notification of it."""
    seen: dict[int, int] = {}
    done = asyncio.Event()
    poller = asyncio.create_task(first_seen(http, seen, done))
    latencies = []
    async with await connect(endpoint, request_timeout=30) as client:
        heads = await client.subscribe("newHeads")
        await anext(heads)  # the current head (polled streams start with it)
        while len(latencies) < blocks:
            notification = await anext(heads)
            number = int(notification.result["number"], 16)
            await asyncio.sleep(0.05)  # the poller may be a few ms behind a push
            if number in seen:
                # Negative: the push arrived before the 5 ms poller saw the block.
                latencies.append((notification.received_ns - seen[number]) / 1e6)
    done.set()
    await poller
    return latencies


def wait_for_blocks(http: str, count: int, timeout: float) -> None:
    async def check() -> None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.post(http, json=body) as answer:
                        if int((await answer.json())["result"], 16) >= count:
                            return
                except (aiohttp.ClientError, KeyError, ValueError):
                    pass
                await asyncio.sleep(0.5)
        raise SystemExit(f"{http}: fewer than {count} blocks after {timeout:.0f} s")

    asyncio.run(check())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=20)
    opts = parser.parse_args()
    if not ANVIL.is_file():
        raise SystemExit(f"{ANVIL} is missing: run `make setup`")
    # The releases unpacked into the run's own root, as on a host: the unpack time is part of the figure.
    pair = LocalPair(shared_releases=False)
    anvil = None
    root = pair.root
    try:
        started = time.monotonic()
        pair.start()
        el_http = pair.nodes[EL].rpc_url
        wait_for_blocks(el_http, 3, 240)
        ready = time.monotonic() - started - pair.built_s - pair.unpacked_s
        anvil_port = free_port()
        ipc = root / "anvil.ipc"
        anvil = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", str(anvil_port), "--ipc", str(ipc), "--block-time", "4"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=anvil_env(),
        )
        anvil_http = f"http://127.0.0.1:{anvil_port}"
        wait_for_blocks(anvil_http, 1, 60)
        pair_ms = asyncio.run(head_latency(el_http, el_http, opts.blocks))
        anvil_ms = asyncio.run(head_latency(str(ipc), anvil_http, opts.blocks))
        pair_mem, anvil_mem = pair.rss_mib(), rss_mib([anvil])
    finally:
        if anvil:
            stop([anvil])
        pair.close()

    print(
        f"pair release: build {pair.built_s:.1f} s (0 = cached), unpack {pair.unpacked_s:.1f} s; "
        f"start to 3rd block {ready:.1f} s"
    )
    print(f"{'':34} {'anvil (IPC push)':>18} {'EthereumJS (HTTP poll)':>24} {'ratio':>7}")
    for label, q in (("block -> head notification p50 ms", 0.5), ("block -> head notification p90 ms", 0.9)):
        a, p = pct(anvil_ms, q), pct(pair_ms, q)
        ratio = f"{p / a:6.1f}x" if a >= POLLER_MS else f"> {p / POLLER_MS:.0f}x"
        print(f"{label:34} {a:18.1f} {p:24.1f} {ratio:>7}")
    print(f"{'mean ms':34} {statistics.fmean(anvil_ms):18.1f} {statistics.fmean(pair_ms):24.1f}")
    print(f"{'memory (RSS, MiB)':34} {anvil_mem:18.0f} {pair_mem:24.0f} {pair_mem / anvil_mem:7.1f}x")
    print(f"({opts.blocks} blocks each; the pair's RSS is EthereumJS + beacon + validator; a baseline under")
    print(f" the reference poller's {POLLER_MS} ms resolution is rated against {POLLER_MS} ms)")


if __name__ == "__main__":
    main()
