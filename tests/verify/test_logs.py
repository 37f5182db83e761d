"""Logs on every host: the fleet's log shipper enabled and running, journal-remote fleets' receivers on
the private address only (a port per sending host) with the uploader's cursor advancing, each host's
uploads taken only with its own certificate and filed under its name, and the exporters whose data the
monitoring host collects reachable from the monitoring host(s) only (live nftables ruleset).

Alloy, Loki and Grafana come from Grafana's apt repository, which the devnet cannot reach: their
checks run on `log_shipper: alloy` fleets only and say so where they skip."""

from __future__ import annotations

import json
import shlex
import time
import uuid

import pytest

from mevfleet.model import HostPlan
from mevfleet.monitoring import (
    JOURNAL_REMOTE_OUTPUT,
    JOURNAL_TLS_DIR,
    is_monitoring,
    listen,
    log_shipper,
    own_sender,
    received_journal,
    receiver_unit,
    shipper_units,
    ships_journals,
)
from mevfleet.nft import Packet, verdict

OUTSIDE = "203.0.113.7"  # TEST-NET-3: evaluated against the ruleset, never sent
# DynamicUser keeps the uploader's state under /var/lib/private; this is the stable link to it.
UPLOAD_STATE = "/var/lib/systemd/journal-upload/state"
# The uploader saves its cursor after each batch; a freshly deployed host may still be in its first retry.
FIRST_UPLOAD_S = 30
ALLOY_ONLY = "Grafana's stack (Alloy, Loki, Grafana) runs on `log_shipper: alloy` fleets only"


def test_log_shipper_enabled_and_running(host, plan: HostPlan):
    if not plan.monitoring_addresses:
        pytest.skip("the fleet has no monitoring host to ship logs to")
    for unit in shipper_units(plan):
        service = host.service(unit)
        assert service.is_enabled and service.is_running, unit


def test_journal_upload_has_shipped_up_to_a_cursor(host, plan: HostPlan):
    if log_shipper(plan) != "journal-remote":
        pytest.skip(ALLOY_ONLY.replace("runs on", "replaces journal-upload on"))
    if not plan.monitoring_addresses:
        pytest.skip("the fleet has no monitoring host to ship logs to")
    deadline = time.monotonic() + FIRST_UPLOAD_S
    while True:
        state = host.run(f"cat {UPLOAD_STATE}").stdout
        if "LAST_CURSOR=" in state or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert "LAST_CURSOR=" in state, f"{UPLOAD_STATE}: {state!r}"


def test_journal_remote_listens_on_the_private_address_only(host, plan: HostPlan):
    if not is_monitoring(plan) or log_shipper(plan) != "journal-remote":
        pytest.skip("only monitoring hosts of journal-remote fleets receive journals")
    sockets = {line.split()[3] for line in host.run("ss -Hltn").stdout.splitlines()}
    for sender in plan.log_senders:
        # Its stunnel service on the private address; its journal-remote on loopback, running.
        assert {s for s in sockets if s.rsplit(":", 1)[1] == str(sender.upload)} == {
            f"{plan.listen_address}:{sender.upload}"
        }, sender.name
        assert {s for s in sockets if s.rsplit(":", 1)[1] == str(sender.local)} == {f"127.0.0.1:{sender.local}"}
        assert host.service(receiver_unit(sender)).is_running, receiver_unit(sender)


def test_loki_and_grafana_answer_and_grafana_refuses_anonymous_access(host, plan: HostPlan):
    if log_shipper(plan) != "alloy":
        pytest.skip(ALLOY_ONLY)
    if not is_monitoring(plan):
        pytest.skip("Loki and Grafana run on monitoring hosts")
    loki = f"http://{listen(plan, 'loki', 'http')}/ready"
    assert host.run(f"curl -fsS -m 10 {shlex.quote(loki)}").rc == 0, loki
    grafana = f"http://{listen(plan, 'grafana', 'web')}"
    health = json.loads(host.run(f"curl -fsS -m 10 {grafana}/api/health").stdout)
    assert health["database"] == "ok"
    anonymous = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' -m 10 {grafana}/api/search").stdout
    assert anonymous == "401"


def test_exporters_reachable_only_from_the_monitoring_hosts(host, plan: HostPlan, fleet):
    inventory, _ = fleet
    monitoring = {h.address for h in inventory.monitoring_hosts()}
    peers = {h.address for h in inventory.hosts.values()} - monitoring
    result = host.run("nft -j list table inet mevfleet")
    assert result.rc == 0, f"mevfleet table not loaded: {result.stderr}"
    ruleset = json.loads(result.stdout)
    exporters = [p for p in plan.ports() if p.exposure == "monitoring"]
    assert exporters, "every host runs node_exporter"
    wrong = []
    for p in exporters:
        for proto in p.protocols:
            expected = [(a, "accept") for a in monitoring] + [(a, "drop") for a in (*peers, OUTSIDE)]
            for source, want in expected:
                got = verdict(ruleset, Packet(source, proto, p.port))
                if got != want:
                    wrong.append(f"{p.key} {proto}/{p.port} from {source}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_journal_remote_refuses_a_host_without_its_certificate(host, plan: HostPlan):
    """Log lines reach the fleet's journal only from a host holding its certificate from the fleet CA: the
    same entry, sent from this host to the monitoring host, is accepted with the host's certificate and
    refused without it (TLS or HTTP, either way never stored)."""
    if not ships_journals(plan):
        pytest.skip("only journal-remote fleets ship over HTTPS with host certificates")
    url = f"https://{plan.monitoring_addresses[0]}:{own_sender(plan).upload}/upload"
    entry = (
        "printf '__REALTIME_TIMESTAMP=%s\\nMESSAGE=mevfleet verify: certificate probe\\n"
        'SYSLOG_IDENTIFIER=mevfleet-verify\\n\\n\' "$(date +%s%6N)"'
    )
    post = (
        f"curl -s -o /dev/null -w '%{{http_code}}' -m 10 --cacert {JOURNAL_TLS_DIR}/ca.pem "
        f"-H 'Content-Type: application/vnd.fdo.journal' --data-binary @- {shlex.quote(url)}"
    )
    certified = host.run(f"{entry} | {post} --cert {JOURNAL_TLS_DIR}/host.pem --key {JOURNAL_TLS_DIR}/host.key")
    anonymous = host.run(f"{entry} | {post}")
    assert certified.stdout.strip() == "202", f"with its certificate: HTTP {certified.stdout} {certified.stderr}"
    assert not anonymous.stdout.strip().startswith("2"), f"without a certificate: HTTP {anonymous.stdout}"


def _upload(plan: HostPlan, port: int, fields: str, cert: str = f"{JOURNAL_TLS_DIR}/host") -> str:
    """A shell pipeline posting one journal entry (export format) to a monitoring host's port with a
    certificate and key (<cert>.pem, <cert>.key); prints the HTTP status (000: no TLS session)."""
    url = f"https://{plan.monitoring_addresses[0]}:{port}/upload"
    entry = f"printf '__REALTIME_TIMESTAMP=%s\\n{fields}\\n\\n' \"$(date +%s%6N)\""
    return (
        f"{entry} | curl -s -o /dev/null -w '%{{http_code}}' -m 10 --cacert {JOURNAL_TLS_DIR}/ca.pem "
        f"--cert {shlex.quote(cert)}.pem --key {shlex.quote(cert)}.key "
        f"-H 'Content-Type: application/vnd.fdo.journal' --data-binary @- {shlex.quote(url)}"
    )


def test_journal_remote_files_an_upload_under_its_certificates_name(host, plan: HostPlan, fleet, _hosts):
    """What a host uploads with its certificate is filed as remote-<its name>.journal on the monitoring
    host, even when its entries claim another host's _HOSTNAME: they land in no other host's files."""
    if not ships_journals(plan):
        pytest.skip("only journal-remote fleets ship over HTTPS with host certificates")
    _, fleet_plan = fleet
    other = next(name for name in fleet_plan.hosts if name != plan.name)
    token = f"mevfleet-verify-{uuid.uuid4().hex}"
    fields = f"MESSAGE={token}\\nSYSLOG_IDENTIFIER=mevfleet-verify\\n_HOSTNAME={other}"
    status = host.run(_upload(plan, own_sender(plan).upload, fields))
    assert status.stdout.strip() == "202", f"HTTP {status.stdout} {status.stderr}"
    monitoring = next(n for n, p in fleet_plan.hosts.items() if p.address == plan.monitoring_addresses[0])
    receiver = _hosts(monitoring)
    own = shlex.quote(received_journal(own_sender(plan)))  # the current file (rotated ones get an @ suffix)
    deadline = time.monotonic() + 10
    while True:  # journal-remote writes as it receives; allow its file a moment
        mine = receiver.run(f"journalctl --file={own} MESSAGE={token} -o json --no-pager").stdout
        if token in mine or time.monotonic() > deadline:
            break
        time.sleep(1)
    entries = [json.loads(line) for line in mine.splitlines() if line.startswith("{")]
    assert [e["_HOSTNAME"] for e in entries] == [other], mine
    anywhere = receiver.run(f"journalctl --directory={JOURNAL_REMOTE_OUTPUT} MESSAGE={token} -o json --no-pager")
    assert len([line for line in anywhere.stdout.splitlines() if token in line]) == 1, anywhere.stdout


def test_journal_remote_takes_on_a_hosts_port_only_the_certificate_naming_it(host, plan: HostPlan):
    """On the monitoring host, whose own certificate (a valid one of the fleet CA) is at hand: that
    certificate is taken on its own port and refused on every other host's (stunnel checkHost). The
    firewall, which also keeps other hosts off a host's port, is not in the way on loopback."""
    if not ships_journals(plan) or not is_monitoring(plan):
        pytest.skip("monitoring hosts of journal-remote fleets receive journals")
    fields = "MESSAGE=mevfleet verify: certificate name probe\\nSYSLOG_IDENTIFIER=mevfleet-verify"
    answers = {s.name: host.run(_upload(plan, s.upload, fields)).stdout.strip() for s in plan.log_senders}
    assert answers.pop(plan.name) == "202"
    assert answers and not [name for name, code in answers.items() if code.startswith("2")], answers
