"""How the control machine runs hostside.py on a host: over SSH (a fleet host), or as a local process on a
directory tree (`LocalTransport`: the unit tests, and a control machine backing up itself).

The script travels on stdin with its request; nothing is installed on the host and nothing secret is in
argv (a data key is in the request, on stdin).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..model import HostPlan
from .errors import CloudError

SCRIPT = Path(__file__).with_name("hostside.py").read_text()
# First stdin line: the script (JSON string); the rest: the request. __name__ is "__main__" under -c.
BOOT = 'import json,sys; exec(compile(json.loads(sys.stdin.readline()), "mevfleet-hostside", "exec"))'


def _payload(request: dict) -> bytes:
    return (json.dumps(SCRIPT) + "\n" + json.dumps(request)).encode()


def _answer(name: str, rc: int, out: bytes, err: bytes) -> dict:
    try:
        answer = json.loads(out)
    except ValueError:
        # Only the last line of stderr: an exception's type and message, never a variable's value.
        last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise CloudError(f"{name}: the backup helper failed (exit {rc}): {last}") from None
    if "error" in answer:
        raise CloudError(f"{name}: {answer['error']}")
    return answer


@dataclass
class LocalTransport:
    """A host's file tree under `root` on this machine; the same script, run by this Python."""

    name: str
    root: Path
    python: str = sys.executable

    @property
    def host_root(self) -> str:
        return str(self.root)

    def call(self, request: dict) -> dict:
        done = subprocess.run([self.python, "-c", BOOT], input=_payload(request), capture_output=True, timeout=600)
        return _answer(self.name, done.returncode, done.stdout, done.stderr)


@dataclass
class SshTransport:
    """A fleet host over SSH as its plan says (sshclient.connect: the plan's SshPlan); sudo when not root."""

    plan: HostPlan
    timeout: float = 600

    @property
    def name(self) -> str:
        return self.plan.name

    host_root = "/"

    def call(self, request: dict) -> dict:
        from ..sshclient import connect

        command = f"python3 -c {shlex.quote(BOOT)}"
        if self.plan.ssh.sudo:
            command = "sudo -n " + command
        try:
            client = connect(self.plan.ssh)
        except Exception as exc:
            raise CloudError(f"{self.name}: cannot connect over SSH: {type(exc).__name__}: {exc}") from None
        try:
            stdin, stdout, stderr = client.exec_command(command, timeout=self.timeout)
            stdin.write(_payload(request))
            stdin.channel.shutdown_write()
            out, err = stdout.read(), stderr.read()
            return _answer(self.name, stdout.channel.recv_exit_status(), out, err)
        finally:
            client.close()
