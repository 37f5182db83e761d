"""The journals' TLS front as rendered, run by the real stunnel (Debian 12's stunnel4, 5.68 here): each
sending host's stunnel service takes only a certificate of the fleet CA that names that host. Every
host of a small fleet presents its certificate (from the real fleet CA code, fleetca.py) to every
host's service: only the matching one reaches the receiver behind it; a certificate naming `eth10` is
refused on `eth1`'s service (names match whole, not by prefix), and so is no certificate.

The rendered config is run as it is but for where it listens and connects (free loopback ports here
instead of the monitoring host's private address) and where it reads its certificates (a temporary
CA instead of /etc/mevfleet/journal). tests/integration/test_monitoring.py runs it on the test hosts."""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mevfleet import fleetca
from mevfleet.inventory import parse_inventory
from mevfleet.monitoring import JOURNAL_TLS_DIR, STUNNEL_CONFIG
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files
from testbed.services import free_port

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
HOSTS = {"mon1": "10.0.0.1", "eth1": "10.0.0.2", "eth10": "10.0.0.3"}
INVENTORY = (
    "fleet: {nodes: devnet, monitoring: {log_shipper: journal-remote}}\n"
    "hosts: {mon1: {address: 10.0.0.1, roles: [monitoring]}, eth1: {address: 10.0.0.2, chains: [ethereum]},"
    " eth10: {address: 10.0.0.3, chains: [arbitrum]}}\n"
)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _reaches(port: int, ca: Path, cert: Path | None, key: Path | None) -> bool:
    """An HTTP request through the service on `port` with this client certificate gets the receiver's 200."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the front's own certificate names the monitoring host, not 127.0.0.1
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return tls.recv(64).startswith(b"HTTP/1.0 200")
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return False


@pytest.mark.skipif(STUNNEL is None, reason="stunnel4 is not installed (Debian's stunnel4 package)")
def test_each_hosts_service_takes_only_the_certificate_naming_that_host(tmp_path: Path):
    plan = compile_plan(parse_inventory(INVENTORY, "f.yml")).hosts["mon1"]
    (config,) = [f.content for f in host_files(plan, HostFacts()) if f.path == STUNNEL_CONFIG]
    ca_dir = tmp_path / "ca"
    creds = {name: fleetca.ensure_host(ca_dir, "f", name, address) for name, address in HOSTS.items()}
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    ports = {}
    # One section per sending host ([name] then its options): each gets a free loopback port.
    sections = re.split(r"^\[([^\]]+)\]$", config, flags=re.M)
    body = sections[0]
    for name, text in zip(sections[1::2], sections[2::2], strict=True):
        ports[name] = free_port()
        text = re.sub(r"^accept = \S+$", f"accept = 127.0.0.1:{ports[name]}", text, flags=re.M)
        text = re.sub(r"^connect = \S+$", f"connect = 127.0.0.1:{receiver.server_port}", text, flags=re.M)
        body += f"[{name}]{text}"
    body = (
        body.replace(f"{JOURNAL_TLS_DIR}/host.pem", str(creds["mon1"].cert))
        .replace(f"{JOURNAL_TLS_DIR}/host.key", str(creds["mon1"].key))
        .replace(f"{JOURNAL_TLS_DIR}/ca.pem", str(creds["mon1"].ca))
    )
    assert set(ports) == set(HOSTS) and JOURNAL_TLS_DIR not in body
    (tmp_path / "front.conf").write_text(body)
    front = subprocess.Popen([STUNNEL, str(tmp_path / "front.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _reaches(ports["mon1"], creds["mon1"].ca, creds["mon1"].cert, creds["mon1"].key):
            assert front.poll() is None and time.monotonic() < deadline, "stunnel did not come up"
            time.sleep(0.1)
        taken = {
            (presenter, service)
            for presenter, c in creds.items()
            for service, port in ports.items()
            if _reaches(port, c.ca, c.cert, c.key)
        }
        anonymous = [service for service, port in ports.items() if _reaches(port, creds["mon1"].ca, None, None)]
    finally:
        front.terminate()
        log = front.communicate(timeout=10)[0].decode()
        receiver.shutdown()
    assert taken == {(name, name) for name in HOSTS}, log
    assert anonymous == [], log
    assert "Rejected by CERT at depth=0: CN=eth10" in log  # refused by its name, not by chance
