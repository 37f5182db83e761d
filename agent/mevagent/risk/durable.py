"""Small JSON state files that survive a crash at any instant.

Write a temporary file, fsync it, rename it over the old one, fsync the directory. On a full disk the
write fails and the old file stays as it was: write() may store only part of what it was given (it returns
how much), so a single call that was not checked would rename a truncated file over a good one.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def write_all(fd: int, data: bytes) -> None:
    """All of `data`, or OSError (ENOSPC, EFBIG, EDQUOT) after part of it: never a silent short write."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = json.dumps(data, sort_keys=True, indent=1).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            write_all(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        # A full disk keeps the old file and leaves no half-written one beside it.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    # The rename is only durable once the directory entry is on disk too.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> Any | None:
    """The file's JSON, None when it does not exist; ValueError when it exists but is not JSON."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return json.loads(text)
