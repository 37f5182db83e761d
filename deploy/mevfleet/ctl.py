"""`mevfleet ctl ...`: the fleet control plane's operator URLs from the command line.

The operator's token is read from a file (mode 0600 or stricter), never from the command line, so it
is in no shell history and no `ps` listing. The control plane's certificate is checked against
`--ca-file` (the deploy's CA or the certificate itself when self-signed). Each command prints the JSON
(or CSV) answer; a refused call exits 1 with the control plane's message; a four-eyes action prints
the approval id that a second operator passes to `mevfleet ctl approve`.
"""

from __future__ import annotations

import json
import ssl
import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

DEFAULT_TOKEN = Path("~/.config/mevfleet/control.token")


def _token(path: Path) -> str:
    path = path.expanduser()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise click.ClickException(f"--token-file: cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise click.ClickException(f"--token-file: {path} has mode {mode:04o}; chmod 600 it")
    token = path.read_text().strip()
    if not token:
        raise click.ClickException(f"--token-file: {path} is empty")
    return token


class Client:
    def __init__(self, host: str, risk_port: int, dashboard_port: int, token: str, ca_file: Path | None) -> None:
        self.risk = f"https://{host}:{risk_port}"
        self.dashboard = f"https://{host}:{dashboard_port}"
        self._token = token
        self._ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            raise click.ClickException(f"cannot reach the control plane at {url}: {exc}") from None


def _show(status: int, text: str) -> None:
    if status >= 400:
        try:
            message = json.loads(text).get("error", text)
        except ValueError:
            message = text
        raise click.ClickException(f"HTTP {status}: {message}")
    click.echo(text if not text.startswith("{") else json.dumps(json.loads(text), indent=2))
    if status == 202:
        click.echo("awaiting a second operator: mevfleet ctl approve <approval_id>", err=True)


@click.group()
@click.option("--host", default="127.0.0.1", show_default=True, help="The control host.")
@click.option("--risk-port", default=8908, show_default=True)
@click.option("--dashboard-port", default=8080, show_default=True)
@click.option("--token-file", type=click.Path(path_type=Path), default=DEFAULT_TOKEN, show_default=True)
@click.option("--ca-file", type=click.Path(path_type=Path, exists=True), help="CA of the control plane's certificate.")
@click.pass_context
def ctl(ctx: click.Context, host: str, risk_port: int, dashboard_port: int, token_file: Path, ca_file: Path | None):
    """Operate the fleet through its control plane (token from a file)."""
    ctx.obj = Client(host, risk_port, dashboard_port, _token(token_file), ca_file)


@ctl.command("emergency-stop")
@click.option("--reason", required=True)
@click.pass_obj
def emergency_stop(client: Client, reason: str) -> None:
    """Stop every agent now; prints each agent's acknowledgement and who did not answer."""
    _show(*client.call("POST", client.risk + "/emergency/stop", {"reason": reason}))


@ctl.command("resume")
@click.pass_obj
def resume(client: Client) -> None:
    """Request resuming after an emergency stop (a second operator approves)."""
    _show(*client.call("POST", client.risk + "/emergency/resume", {}))


@ctl.command()
@click.argument("strategy")
@click.option("--resume", "resume_it", is_flag=True, help="Resume instead of pausing.")
@click.pass_obj
def pause(client: Client, strategy: str, resume_it: bool) -> None:
    """Pause (or --resume) a strategy on every agent."""
    action = "resume" if resume_it else "pause"
    _show(*client.call("POST", f"{client.risk}/strategies/{strategy}/{action}", {}))


@ctl.command()
@click.option("--max-total-exposure-usd", type=float)
@click.option("--daily-limit-usd", type=float)
@click.option("--consecutive-losses", type=int)
@click.pass_obj
def limits(client: Client, **values: Any) -> None:
    """Change the fleet limits (above the inventory's ceiling: a second operator approves)."""
    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        raise click.UsageError("name at least one limit")
    _show(*client.call("POST", client.risk + "/config/risk", changes))


@ctl.command()
@click.pass_obj
def exposure(client: Client) -> None:
    """Fleet exposure per chain, token and agent; daily P&L; limits; leases."""
    _show(*client.call("GET", client.risk + "/exposure/current"))


@ctl.command()
@click.option("--day", help="UTC day, YYYY-MM-DD (default: today).")
@click.option("--csv", "as_csv", is_flag=True)
@click.pass_obj
def report(client: Client, day: str | None, as_csv: bool) -> None:
    """The day's P&L per chain, strategy and token."""
    query = "&".join(f"{k}={v}" for k, v in (("day", day), ("format", "csv" if as_csv else "json")) if v)
    _show(*client.call("GET", f"{client.dashboard}/api/reports/daily?{query}"))


@ctl.command()
@click.argument("approval_id", required=False)
@click.pass_obj
def approve(client: Client, approval_id: str | None) -> None:
    """Approve another operator's request (without an id: list the pending ones)."""
    if approval_id is None:
        _show(*client.call("GET", client.risk + "/approvals"))
        return
    _show(*client.call("POST", f"{client.risk}/approvals/{approval_id}/approve", {}))


if __name__ == "__main__":
    sys.exit(ctl())
