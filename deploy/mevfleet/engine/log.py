"""The deploy's log file: what the operator's screen leaves out (full command output, engine tracebacks).

The screen gets one line per failed host; this file gets the rest. It lives beside the devnet's state
(MEVFLEET_LOG_DIR, else ~/.local/state/mevfleet/logs), one file per run, private to the operator: command
output can name paths and units, never secrets (the deploy never puts a secret on a command line).
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import IO

KEEP = 50  # newest run logs kept


def log_dir() -> Path:
    configured = os.environ.get("MEVFLEET_LOG_DIR")
    return Path(configured) if configured else Path.home() / ".local/state/mevfleet/logs"


class DeployLog:
    def __init__(self, path: Path, stream: IO[str]):
        self.path = path
        self._stream = stream

    @classmethod
    def open(cls) -> DeployLog:
        directory = log_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = directory / f"deploy-{stamp}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for old in sorted(directory.glob("deploy-*.log"))[:-KEEP]:
            old.unlink(missing_ok=True)
        return cls(path, os.fdopen(fd, "a"))

    def write(self, text: str) -> None:
        self._stream.write(f"{time.strftime('%H:%M:%S')} {text.rstrip()}\n")
        self._stream.flush()

    def exception(self, where: str, exc: BaseException) -> None:
        self.write(f"{where}: {''.join(traceback.format_exception(exc))}")

    @staticmethod
    def one_line(exc: BaseException) -> str:
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[-1] if text else 'no message'}"

    def close(self) -> None:
        self._stream.close()
