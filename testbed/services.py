"""Real Redis 7 and PostgreSQL 15 (Debian's packages) started on loopback in temporary directories.

Redis keeps its stream data the way the fleet's bus must (appendonly, fsync on every write), so a
restart, even a SIGKILL, loses nothing it acknowledged. PostgreSQL runs as the `postgres` system user
(initdb refuses root) with scram-sha-256 and a generated password.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


# Loopback ports for the tests' servers come from below the kernel's ephemeral range (32768-60999 by
# default): a port bind(0) hands out is the same kind the next outgoing connection gets, and one did take it
# between this pick and the server's own bind (EADDRINUSE in CI). Fixed test ports (anvils at 31xxx, 18550)
# are outside this range too. Random, so parallel workers rarely pick the same; never the same one twice here.
PORT_RANGE = range(20000, 30000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on now, which no outgoing connection will be given meanwhile."""
    for _ in range(500):
        port = random.choice(PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} after 500 tries")


def missing() -> str | None:
    """Why the services cannot start here, or None."""
    if REDIS_SERVER is None or not (PG_BIN / "initdb").is_file():
        return "redis-server or PostgreSQL 15 is missing: run `make setup` (Debian redis-server, postgresql)"
    return None


def _wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self.password_file = directory / "redis.password"
        self.password_file.write_text(self.password)
        os.chmod(self.password_file, 0o600)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        args = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--requirepass", self.password,
            "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: what a crashed host does (appendfsync always: nothing acknowledged is lost)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


class Postgres:
    USER = "mevcontrol"

    def __init__(self) -> None:
        # Its own directory under /tmp: pytest's are private to root, and postgres must reach this one.
        self.directory = Path(tempfile.mkdtemp(prefix="mevcontrol-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()
        self.password = secrets.token_hex(16)
        shutil.chown(self.directory, "postgres", "postgres")
        os.chmod(self.directory, 0o700)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.USER}:{self.password}@127.0.0.1:{self.port}/{self.USER}"

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, check=check, timeout=120)

    def init(self) -> None:
        pwfile = self.directory / "pw"
        pwfile.write_text(self.password)
        shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(pwfile, 0o600)
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.USER, "--pwfile", str(pwfile),
            "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.directory}'\n"
                "shared_buffers = 64MB\nmax_connections = 50\n"
            )
        self.start()
        # createdb authenticates with the password like any client (scram): through its environment.
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", self.USER, self.USER],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "pg.log"), "-w", "-t", "60",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: its committed transactions survive in the WAL)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # Orphaned backends hold the shared memory: wait until they are gone too.
        time.sleep(0.5)
