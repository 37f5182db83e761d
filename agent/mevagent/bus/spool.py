"""The agent's on-disk spool for durable events (executions, outcomes, command acks).

An event is appended (one JSON line) and fsynced before the publisher tries Redis, and the spool's
delivered offset moves past it only after Redis accepted it. A crash or a Redis outage therefore loses
none: on start, and after Redis returns, everything past the offset is sent again. Sending one twice
is harmless (the control plane writes each event id once), so the order of the two writes below always
errs towards a duplicate, never towards a loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mevagent.risk.durable import write_all

SPOOL_FILE = "bus-spool.jsonl"
OFFSET_FILE = "bus-spool.offset"
COMPACT_AT_BYTES = 1 << 20  # once everything is delivered and the file is this big, start it again


@dataclass(frozen=True, slots=True)
class Spooled:
    end: int  # the file offset just past this line
    raw: bytes


class Spool:
    """Append-only file + delivered offset. Not thread-safe: one publisher task owns it (its blocking
    calls run in a worker thread, one at a time)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / SPOOL_FILE
        self.offset_path = directory / OFFSET_FILE
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self._fd).st_size
        self.delivered = min(self._read_offset(), self.size)

    def _read_offset(self) -> int:
        try:
            return max(0, int(self.offset_path.read_text().strip() or 0))
        except (OSError, ValueError):
            return 0  # unknown: send everything again (duplicates are harmless, losses are not)

    def pending(self) -> list[Spooled]:
        """Every line past the delivered offset (a torn last line from a crash mid-write is skipped)."""
        if self.size <= self.delivered:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.delivered)
            data = f.read(self.size - self.delivered)
        out: list[Spooled] = []
        position = self.delivered
        for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn (or empty)
            position += len(line) + 1
            if line:
                out.append(Spooled(position, line))
        return out

    def append(self, lines: list[bytes]) -> list[Spooled]:
        """Write `lines` (no newline inside: they are compact JSON) and fsync: durable when it returns."""
        blob = b"".join(line + b"\n" for line in lines)
        try:
            write_all(self._fd, blob)
            os.fsync(self._fd)
        except OSError:
            # A full disk took part of the batch: cut it off, so that the retry appends whole lines where
            # this batch began (a torn line would glue itself to the next one and shift every offset).
            os.ftruncate(self._fd, self.size)
            raise
        out: list[Spooled] = []
        position = self.size
        for line in lines:
            position += len(line) + 1
            out.append(Spooled(position, line))
        self.size = position
        return out

    def mark_delivered(self, end: int) -> None:
        """Everything up to `end` reached Redis. Compacts the file once all of it has and it is large."""
        if end <= self.delivered:
            return
        self.delivered = end
        if self.delivered >= self.size and self.size >= COMPACT_AT_BYTES:
            # Offset 0 first: a crash in between re-sends the old lines, it never skips a new one.
            self._write_offset(0)
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self.size = self.delivered = 0
            return
        self._write_offset(self.delivered)

    def _write_offset(self, value: int) -> None:
        tmp = self.offset_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, str(value).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.offset_path)

    def close(self) -> None:
        os.close(self._fd)
