"""The Solana simulator (`solana-standin`) as a real process on a loopback port, for tests and benches."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import urllib3

from ..services import free_port

STANDIN = Path(sys.executable).with_name("solana-standin")


@dataclass
class RunningStandIn:
    proc: subprocess.Popen
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def block_engine(self) -> str:
        return f"{self.http}/api/v1/bundles"

    def call(self, method: str, *params: object) -> object:
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        answer = orjson.loads(
            urllib3.request("POST", self.http, body=body, headers=_JSON, timeout=10, retries=False).data
        )
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_JSON = {"Content-Type": "application/json"}


def start_standin(
    *extra: str, cheats: bool = True, slot_ms: int = 400, auction_ms: int = 50, jito_rps: float = 1000.0
) -> RunningStandIn:
    exe = STANDIN if STANDIN.exists() else shutil.which("solana-standin")
    port = free_port()
    args = [str(exe), "--port", str(port), *(["--cheats"] if cheats else []), "--slot-ms", str(slot_ms)]
    args += ["--auction-ms", str(auction_ms), "--jito-rps", str(jito_rps), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    running = RunningStandIn(proc, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"solana-standin exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if running.call("getHealth") == "ok":
                return running
        except (urllib3.exceptions.HTTPError, OSError):
            time.sleep(0.05)
    running.stop()
    raise RuntimeError("solana-standin did not answer getHealth within 30 s")
