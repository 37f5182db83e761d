"""Security figure: lynis's hardening index on a provisioned test host against a stock one.

Both hosts boot from the same test-host image on their own network; one is deployed by the real
engine, the other is left as the image made it. `lynis audit system --quick` then runs in both at
the same time, and this prints both indexes, the delta, what lynis still flags on the provisioned
host and why that is left.

In a container, global kernel settings belong to the machine: the deploy writes the plan's
kernel-hardening and network-hardening sysctls to sysctl.d but defers applying them (see
/var/lib/mevfleet/deferred.json), so lynis's sysctl test (KRNL-6000) still reads the machine's
values. The projection line counts only those KRNL-6000 keys whose planned value is exactly what
lynis expects, i.e. what a host that owns its kernel (VM or bare metal) earns on top.

    .venv/bin/python bench/security.py        (about 2-3 minutes; Docker engine required)
"""

from __future__ import annotations

import ipaddress
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import yaml

from mevfleet import INVENTORY_DIR
from mevfleet.devnet import Harness, TestHost
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.model import HostPlan
from mevfleet.plan import compile_plan

# Its own network, apart from the devnet (172.30.87.0/24) and the fleet integration test (.89).
NETWORK = "mevfleet-lynis"
SUBNET = "172.30.90.0/24"
STOCK = TestHost("lynis-stock", "172.30.90.10")
PROVISIONED = TestHost("lynis-prov", "172.30.90.11")
LYNIS = ["lynis", "audit", "system", "--quick", "--no-colors"]

# What lynis still flags on a provisioned test host and why mevfleet leaves it (test id -> reason).
LEFT_AS_IS = {
    "KRNL-6000": "global sysctls are deferred in a container (the machine's kernel); see the projection",
    "FILE-6310": "/tmp, /home, /var partitions: the container has one filesystem; a disk layout decision",
    "FILE-6344": "/proc hidepid: /proc is the container runtime's mount; services use systemd ProtectProc",
    "FILE-6374": "/dev noexec: /dev is the container runtime's mount",
    "ACCT-9628": "auditd exits in a container (audit netlink: EPERM; audit is not namespaced)",
    "ACCT-9622": "process accounting: accton gets EPERM in a container (acct(2) needs CAP_SYS_PACCT)",
    "MACF-6290": "AppArmor: the test hosts run unconfined (systemd as PID 1 needs it)",
    "USB-3000": "USBGuard: would block the USB keyboard or virtual media remote hands need at the console",
    "FINT-4350": "AIDE: Recommends an MTA (bsd-mailx, exim4); debsums checks package files weekly instead",
    "HRDN-7230": "rootkit scanners: noisy after every upgrade; debsums and the deploy's sha256 pins cover files",
    "MALW-3280": "anti-virus daemon: no untrusted files are ever handled on a chain-node host",
    "DEB-0880": "fail2ban: SSH is key-only and rate limited by the nftables ruleset",
    "TOOL-5190": "IDS/IPS: SSH is key-only and rate limited by the nftables ruleset",
    "DEB-0810": "apt-listbugs: queries bugs.debian.org on every install (unreachable here, blocks installs)",
    "LOGG-2154": "remote syslog: no rsyslog; the journal is the log store (log shipping is its own concern)",
    "SSH-7408": "Port 22 is the inventory's choice (ssh.port); MaxSessions 4 (the deploy itself uses 2)",
    "SSH-7440": "AllowUsers/AllowGroups: accounts the inventory does not know (break-glass) would be locked out",
    "AUTH-9286": "PASS_MAX_DAYS: an expired password makes PAM refuse even key-only SSH logins",
    "PKGS-7392": "pending security updates in the image: unattended-upgrades applies them on its daily timer",
    "NETW-3200": "disabled by `install <module> /bin/false` (CIS); lynis 3.0.8 only recognises /bin/true",
    "KRNL-5788": "no kernel image in a container (the machine's kernel runs it)",
    "BOOT-5264": "per-service sandboxing belongs in each service's own unit, not in host hardening",
    "ACCT-9626": "sysstat: node_exporter already records these counters for Prometheus",
    "PKGS-7394": "apt-show-versions: node_exporter's apt collector already exports pending upgrades",
    "NAME-4028": "no DNS domain: the inventory addresses hosts by IP",
    "TOOL-5002": "informational: lynis does not recognise pyinfra (agentless, over SSH)",
    "LYNIS": "Debian's packaged lynis 3.0.8; the hosts install tools from the Debian mirror only",
}


@dataclass(frozen=True)
class Audit:
    host: str
    index: int
    points: int
    max_points: int
    warnings: tuple[str, ...]  # "TEST-ID|text"
    suggestions: tuple[str, ...]  # "TEST-ID|text|details"
    sysctl_expected: dict[str, str]  # KRNL-6000 keys lynis found different -> the value it expects
    test_points: dict[str, tuple[int, int]]  # test id -> (points, max points)
    seconds: float

    def flagged(self) -> set[str]:
        return {line.split("|", 1)[0] for line in self.warnings + self.suggestions}


@dataclass(frozen=True)
class Comparison:
    stock: Audit
    provisioned: Audit
    plan: HostPlan
    deploy_seconds: float

    @property
    def delta(self) -> int:
        return self.provisioned.index - self.stock.index

    def kernel_points(self) -> list[str]:
        """KRNL-6000 keys lynis misses on the container whose planned value is what it expects."""
        planned = self.plan.sysctls()
        return sorted(k for k, v in self.provisioned.sysctl_expected.items() if planned.get(k) == v)

    @property
    def projected_index(self) -> int:
        a = self.provisioned
        return (a.points + len(self.kernel_points())) * 100 // a.max_points


def write_inventory(state_dir: Path) -> Path:
    """The devnet inventory cut down to the one provisioned host, on this bench's own network."""
    doc = yaml.safe_load((INVENTORY_DIR / "devnet.yml").read_text())
    doc["devnet"] = {"network": NETWORK, "subnet": SUBNET}
    doc["fleet"]["private_networks"] = [SUBNET]
    doc["fleet"]["operator_allowlist"] = [f"{ipaddress.ip_network(SUBNET)[1]}/32"]  # the gateway: this machine
    doc["defaults"]["ssh"]["key"] = str(state_dir / "id_ed25519")
    doc["defaults"]["ssh"]["known_hosts"] = str(state_dir / f"{NETWORK}.known_hosts")
    doc["hosts"] = {PROVISIONED.name: {"address": PROVISIONED.address, "chains": ["ethereum"]}}
    path = state_dir / "inventory.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def audit(host: TestHost) -> Audit:
    """Run lynis inside the host (docker exec: the same for both, whatever SSH allows) and parse it."""
    container = docker.from_env().containers.get(host.container_name)
    started = time.monotonic()
    code, output = container.exec_run(LYNIS)
    seconds = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"lynis failed on {host.name} ({code}): {output.decode(errors='replace')[-2000:]}")
    report = _read(container, "/var/log/lynis-report.dat")
    log = _read(container, "/var/log/lynis.log")
    values: dict[str, list[str]] = {}
    for line in report.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    totals = re.findall(r"Currently having (\d+) points \(out of (\d+)\)", log)
    points, max_points = map(int, totals[-1])
    test_points: dict[str, tuple[int, int]] = {}
    test = ""
    for line in log.splitlines():
        if started_test := re.search(r"Performing test ID (\S+)", line):
            test = started_test.group(1)
        elif scored := re.search(r"Hardening: assigned .*?\((\d+)(?: of (\d+))?\)", line):
            got, of = int(scored.group(1)), int(scored.group(2) or scored.group(1))
            have = test_points.get(test, (0, 0))
            test_points[test] = (have[0] + got, have[1] + of)
    expected = dict(re.findall(r"sysctl key (\S+) has a different value than expected .*?Expected=(\S+),", log))
    return Audit(
        host=host.name,
        index=int(values["hardening_index"][0]),
        points=points,
        max_points=max_points,
        warnings=tuple(values.get("warning[]", ())),
        suggestions=tuple(values.get("suggestion[]", ())),
        sysctl_expected=expected,
        test_points=test_points,
        seconds=seconds,
    )


def _read(container, path: str) -> str:
    code, output = container.exec_run(["cat", path])
    if code != 0:
        raise RuntimeError(f"cannot read {path} in {container.name}: {output.decode(errors='replace')}")
    return output.decode(errors="replace")


def measure(state_dir: Path, keep: bool = False) -> Comparison:
    """Fresh stock and provisioned hosts, one deploy, both audits side by side; hosts removed after."""
    inventory = load_inventory(write_inventory(state_dir))
    plan = compile_plan(inventory)
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=state_dir)
    harness.down()  # never audit a host an earlier, interrupted run already changed
    try:
        harness.up([STOCK, PROVISIONED])
        started = time.monotonic()
        result = run_deploy(plan, inventory, out=lambda _: None)
        deploy_seconds = time.monotonic() - started
        if result.failed:
            raise RuntimeError(f"deploy failed: {result.failed}")
        with ThreadPoolExecutor(max_workers=2) as pool:
            stock, provisioned = pool.map(audit, [STOCK, PROVISIONED])
    finally:
        if not keep:
            harness.down()
    return Comparison(stock, provisioned, plan.hosts[PROVISIONED.name], deploy_seconds)


def render(c: Comparison) -> str:
    s, p = c.stock, c.provisioned
    kernel = c.kernel_points()
    lines = [
        "lynis hardening index (lynis audit system --quick), same image, same run:",
        f"  stock       {s.index:3d}   ({s.points}/{s.max_points} points, {len(s.warnings)} warnings, "
        f"{len(s.suggestions)} suggestions, audit {s.seconds:.0f} s)",
        f"  provisioned {p.index:3d}   ({p.points}/{p.max_points} points, {len(p.warnings)} warnings, "
        f"{len(p.suggestions)} suggestions, audit {p.seconds:.0f} s, deploy {c.deploy_seconds:.0f} s)",
        f"  delta       {c.delta:+3d}   (ratio {p.index / s.index:.2f}x)",
        f"  projection  {c.projected_index:3d}   if the {len(kernel)} deferred sysctls the plan sets to lynis's "
        "expected value were live (a host that owns its kernel)",
        "",
        "Deferred in a container (global kernel settings, written to sysctl.d, applied on VMs and bare metal):",
        "  " + ", ".join(kernel),
        "",
        "Still flagged on the provisioned host:",
    ]
    findings: dict[str, list[str]] = {}
    for line in p.warnings + p.suggestions:
        test, text = line.split("|")[:2]
        findings.setdefault(test, []).append(text)
    for test, texts in sorted(findings.items()):
        more = f" (+{len(texts) - 1} alike)" if len(texts) > 1 else ""
        lines.append(f"  {test:10s} {texts[0][:80]}{more}")
        lines.append(f"  {'':10s}   left: {LEFT_AS_IS.get(test, 'NOT EXPLAINED')}")
    fixed = sorted(s.flagged() - p.flagged())
    lines += [
        "",
        f"Flagged on stock, not on provisioned: {', '.join(fixed)}",
        "",
        "Points by lynis test (stock -> provisioned):",
    ]
    for test in sorted(set(s.test_points) | set(p.test_points)):
        before, after = s.test_points.get(test, (0, 0)), p.test_points.get(test, (0, 0))
        if before != after:
            gained = f"{after[0] - before[0]:+d} of {after[1] - before[1]:+d}"
            lines.append(f"  {test:10s} {before[0]:2d}/{before[1]:<2d} -> {after[0]:2d}/{after[1]:<2d}  ({gained})")
    return "\n".join(lines)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mevfleet-lynis-") as tmp:
        comparison = measure(Path(tmp))
    print(render(comparison))
    return 0 if comparison.provisioned.index > comparison.stock.index else 1


if __name__ == "__main__":
    sys.exit(main())
