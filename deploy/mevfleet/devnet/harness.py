"""Devnet test hosts: Debian containers running systemd and sshd at fixed addresses on a bridge network.

Everything above the harness reaches the hosts over SSH with the harness key, as it reaches production
hosts. The harness itself uses the Docker API only to create, start, stop and inspect them.
"""

from __future__ import annotations

import base64
import functools
import io
import ipaddress
import logging
import os
import re
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from mevfleet.devnet import image

log = logging.getLogger(__name__)

LABEL_HARNESS = "mevfleet.harness"
LABEL_HOST = "mevfleet.host"
LABEL_ADDRESS = "mevfleet.address"
BOOT_TIMEOUT_S = 180.0
SSH_PORT = 22
# `systemctl is-system-running` states that mean boot has finished and services are up.
BOOTED_STATES = frozenset({"running", "degraded"})
# States it reports while boot is still under way (or before systemd answers at all).
BOOTING_STATES = frozenset({"initializing", "starting", "offline", "unknown", ""})

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class HarnessError(RuntimeError):
    """A test host or the harness network is not in the state asked for."""


@dataclass(frozen=True)
class TestHost:
    """One test host: container `mevfleet-<name>`, hostname `name`, fixed IPv4 `address`."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    address: str

    @property
    def container_name(self) -> str:
        return f"mevfleet-{self.name}"


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    container_state: str  # Docker's word: running, exited, created, ...
    systemd_state: str | None  # `systemctl is-system-running`; None while the container is not running
    ssh_reachable: bool
    failed_units: tuple[str, ...] = ()


def default_state_dir() -> Path:
    configured = os.environ.get("MEVFLEET_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".local/state/mevfleet/devnet"


class Harness:
    def __init__(
        self,
        network: str = "mevfleet-devnet",
        subnet: str = "172.30.87.0/24",
        state_dir: Path | None = None,
    ) -> None:
        self.network = network
        self.subnet = ipaddress.IPv4Network(subnet)
        # Docker would pick the first address for the bridge anyway; fixing it keeps it out of reach
        # of the hosts' addresses.
        self.gateway = next(self.subnet.hosts())
        self.state_dir = state_dir if state_dir is not None else default_state_dir()
        self.key_path = self.state_dir / "id_ed25519"
        # Host keys read through the Docker API (a trusted channel), so SSH clients can check them
        # strictly instead of trusting whatever answers on first use.
        self.known_hosts_path = self.state_dir / f"{network}.known_hosts"

    @functools.cached_property
    def _docker(self) -> docker.DockerClient:
        try:
            client = docker.from_env()
            client.ping()
        except docker.errors.DockerException as exc:
            raise HarnessError(f"the Docker engine is not reachable ({exc}); run deploy/bootstrap.sh") from exc
        return client

    # --- public API -----------------------------------------------------------------------------

    def ensure_image(self) -> str:
        return image.ensure_image(self._docker)

    def up(self, hosts: Sequence[TestHost]) -> None:
        """Create what is missing, start what is stopped, and return once every host answers SSH."""
        self.validate(hosts)
        self.ensure_key()
        tag = self.ensure_image()
        self.ensure_network()
        started = time.monotonic()
        containers = [self.ensure_container(host, tag) for host in hosts]
        for container in containers:
            self.ensure_running(container)
        deadline = started + BOOT_TIMEOUT_S
        for host in hosts:
            self.wait_ready(host, deadline)
        log.info("%d host(s) up in %.1f s", len(hosts), time.monotonic() - started)

    def stop(self, name: str) -> None:
        container = self._container(name)
        log.info("host %s: stopping", name)
        container.stop(timeout=30)

    def start(self, name: str) -> None:
        container = self._container(name)
        self.ensure_running(container)
        self.wait_ready(_host_of(container), time.monotonic() + BOOT_TIMEOUT_S)

    def down(self) -> None:
        """Remove every container carrying this harness's label, then its network."""
        for container in self._containers():
            log.info("removing %s", container.name)
            container.remove(force=True, v=True)
        network = self._network()
        if network is not None:
            log.info("removing network %s", self.network)
            try:
                network.remove()
            except docker.errors.APIError as exc:
                raise HarnessError(f"cannot remove Docker network {self.network}: {exc}") from exc
        self.known_hosts_path.unlink(missing_ok=True)

    def status(self) -> list[HostStatus]:
        return [self._status_of(container) for container in self._containers()]

    # --- what `up` ensures, step by step --------------------------------------------------------

    def validate(self, hosts: Sequence[TestHost]) -> None:
        """Reject names and addresses that cannot work before touching Docker."""
        problems = []
        for host in hosts:
            problems += [f"host {host.name!r}: {problem}" for problem in self._problems_of(host)]
        for attribute in ("name", "address"):
            values = [getattr(host, attribute) for host in hosts]
            duplicates = sorted({value for value in values if values.count(value) > 1})
            problems += [f"{attribute} {value!r} is used by more than one host" for value in duplicates]
        if problems:
            raise HarnessError("invalid test hosts:\n" + "\n".join(f"  - {p}" for p in problems))

    def _problems_of(self, host: TestHost) -> list[str]:
        problems = []
        if not _HOSTNAME.match(host.name):
            problems.append("name must be a lowercase hostname label (a-z, 0-9, '-')")
        try:
            address = ipaddress.IPv4Address(host.address)
        except ValueError:
            return [*problems, f"address {host.address!r} is not an IPv4 address"]
        if address not in self.subnet or address in (
            self.subnet.network_address,
            self.subnet.broadcast_address,
        ):
            problems.append(f"address {address} is not a host address in {self.subnet}")
        elif address == self.gateway:
            problems.append(f"address {address} is the network's gateway")
        return problems

    def ensure_key(self) -> None:
        """Generate the harness SSH key pair once; it opens every test host as root."""
        if self.key_path.exists():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        # O_EXCL and the mode at creation: the private key is never readable by others, not even briefly.
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as private_file:
            private_file.write(private)
        # For operators' ssh; the harness itself always derives the public key from the private one.
        self.key_path.with_name(self.key_path.name + ".pub").write_text(self.public_key() + "\n")
        log.info("generated the harness SSH key %s", self.key_path)

    def public_key(self) -> str:
        # Derived from the private key, so a lost or edited .pub file cannot lock the harness out.
        key = serialization.load_ssh_private_key(self.key_path.read_bytes(), password=None)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return public.decode() + " mevfleet-devnet"

    def ensure_network(self) -> Network:
        network = self._network()
        if network is not None:
            subnets = [config.get("Subnet") for config in (network.attrs.get("IPAM") or {}).get("Config") or []]
            if str(self.subnet) not in subnets:
                raise HarnessError(
                    f"Docker network {self.network!r} exists with subnet {subnets}, not {self.subnet}; "
                    f"remove it (docker network rm {self.network}) or choose another network"
                )
            return network
        log.info("creating network %s (%s)", self.network, self.subnet)
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(self.subnet), gateway=str(self.gateway))])
        try:
            return self._docker.networks.create(
                self.network, driver="bridge", ipam=ipam, labels={LABEL_HARNESS: self.network}
            )
        except docker.errors.APIError as exc:
            raise HarnessError(f"cannot create Docker network {self.network} ({self.subnet}): {exc}") from exc

    def ensure_container(self, host: TestHost, tag: str) -> Container:
        try:
            container = self._docker.containers.get(host.container_name)
        except docker.errors.NotFound:
            return self._create_container(host, tag)
        labels = container.labels
        if labels.get(LABEL_HARNESS) != self.network:
            raise HarnessError(f"container {host.container_name} exists but is not a host of harness {self.network!r}")
        if labels.get(LABEL_ADDRESS) != host.address:
            raise HarnessError(
                f"host {host.name} exists with address {labels.get(LABEL_ADDRESS)}, not {host.address}; "
                "take the devnet down first"
            )
        if container.attrs["Config"]["Image"] != tag:
            log.warning("host %s runs an older image; take the devnet down to recreate it", host.name)
        return container

    def _create_container(self, host: TestHost, tag: str) -> Container:
        log.info("host %s: creating %s at %s from %s", host.name, host.container_name, host.address, tag)
        container = self._docker.containers.create(
            tag,
            name=host.container_name,
            hostname=host.name,
            labels={LABEL_HARNESS: self.network, LABEL_HOST: host.name, LABEL_ADDRESS: host.address},
            # What systemd as PID 1 needs without --privileged (which fails on this machine): mounts
            # (SYS_ADMIN), the cgroup tree, and tmpfs for /run. NET_ADMIN is for the hosts' nftables.
            cap_add=["SYS_ADMIN", "NET_ADMIN"],
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            cgroupns="host",
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
            tmpfs={"/run": "rw,nosuid,nodev,mode=755", "/run/lock": "rw,nosuid,nodev,noexec"},
            # systemd's request to halt cleanly; `docker import` cannot store it in the image.
            stop_signal="SIGRTMIN+3",
            network=self.network,
            networking_config={self.network: self._docker.api.create_endpoint_config(ipv4_address=host.address)},
        )
        # Written into the container's filesystem before its first boot, so sshd never runs without it.
        container.put_archive("/root", self._authorized_keys_tar())
        return container

    def _authorized_keys_tar(self) -> bytes:
        buffer = io.BytesIO()
        key = (self.public_key() + "\n").encode()
        now = int(time.time())
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            directory = tarfile.TarInfo(".ssh")
            directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o700, now
            archive.addfile(directory)
            keys = tarfile.TarInfo(".ssh/authorized_keys")
            keys.mode, keys.size, keys.mtime = 0o600, len(key), now
            archive.addfile(keys, io.BytesIO(key))
        return buffer.getvalue()

    def ensure_running(self, container: Container) -> None:
        container.reload()
        if container.status != "running":
            log.info("starting %s", container.name)
            container.start()

    def wait_ready(self, host: TestHost, deadline: float) -> None:
        """Wait until systemd has finished booting and sshd accepts the harness key."""
        started = time.monotonic()
        container = self._container(host.name)
        state = self._wait_booted(host, container, deadline)
        if state == "degraded":
            log.warning("host %s: systemd degraded, failed units: %s", host.name, _failed_units(container))
        log.info("host %s: systemd %s after %.1f s", host.name, state, time.monotonic() - started)
        self._trust_host_key(host, container)
        self._wait_ssh(host, deadline)
        log.info("host %s: ssh up after %.1f s", host.name, time.monotonic() - started)

    def _wait_booted(self, host: TestHost, container: Container, deadline: float) -> str:
        state = ""
        while time.monotonic() < deadline:
            container.reload()
            if container.status != "running":
                logs = container.logs(tail=20).decode(errors="replace")
                raise HarnessError(f"host {host.name}: container {container.status} while booting:\n{logs}")
            state = _systemd_state(container)
            if state in BOOTED_STATES:
                return state
            if state not in BOOTING_STATES:
                raise HarnessError(f"host {host.name}: systemd is {state!r} instead of booting")
            time.sleep(0.5)
        raise HarnessError(f"host {host.name}: systemd still {state!r} after {BOOT_TIMEOUT_S:.0f} s")

    def _trust_host_key(self, host: TestHost, container: Container) -> None:
        # The key is generated at first boot, possibly still being written when systemd reports booted
        # (an empty file on a loaded machine): read it until it is whole.
        for _ in range(40):
            exit_code, output = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            if exit_code == 0 and len(output.split()) >= 2:
                break
            time.sleep(0.5)
        else:
            raise HarnessError(f"host {host.name}: no SSH host key: {output.decode(errors='replace')}")
        key_type, blob = output.decode().split()[:2]
        known = paramiko.HostKeys()
        if self.known_hosts_path.exists():
            known.load(str(self.known_hosts_path))
        known.add(host.address, key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(blob)))
        # Replace, not rewrite in place: a reader never sees a half-written file.
        partial = self.known_hosts_path.with_name(self.known_hosts_path.name + ".partial")
        known.save(str(partial))
        partial.replace(self.known_hosts_path)

    def _wait_ssh(self, host: TestHost, deadline: float) -> None:
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self._ssh_probe(host.address, timeout=5)
                return
            except paramiko.AuthenticationException as exc:
                raise HarnessError(
                    f"host {host.name} ({host.address}) refuses the harness key {self.key_path}; "
                    "was the state dir reset? Take the devnet down and up again"
                ) from exc
            except (OSError, paramiko.SSHException) as exc:
                last_error = exc
                time.sleep(0.5)
        raise HarnessError(
            f"host {host.name}: SSH on {host.address}:{SSH_PORT} not up after {BOOT_TIMEOUT_S:.0f} s ({last_error})"
        )

    def _ssh_probe(self, address: str, timeout: float) -> None:
        """Log in as root with the harness key, checking the host key, and run `true`."""
        with paramiko.SSHClient() as client:
            client.load_host_keys(str(self.known_hosts_path))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(
                address,
                port=SSH_PORT,
                username="root",
                key_filename=str(self.key_path),
                look_for_keys=False,
                allow_agent=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
            )
            _, stdout, _ = client.exec_command("true", timeout=timeout)
            if stdout.channel.recv_exit_status() != 0:
                raise paramiko.SSHException("`true` failed over SSH")

    # --- lookups --------------------------------------------------------------------------------

    def _network(self) -> Network | None:
        # The name filter matches substrings; only an exact name is this harness's network.
        matches = [net for net in self._docker.networks.list(names=[self.network]) if net.name == self.network]
        return matches[0] if matches else None

    def _containers(self) -> list[Container]:
        containers = self._docker.containers.list(all=True, filters={"label": f"{LABEL_HARNESS}={self.network}"})
        return sorted(containers, key=lambda container: container.name)

    def _container(self, name: str) -> Container:
        for container in self._containers():
            if container.labels.get(LABEL_HOST) == name:
                return container
        raise HarnessError(f"no test host {name!r} in harness {self.network!r}")

    def _status_of(self, container: Container) -> HostStatus:
        host = _host_of(container)
        if container.status != "running":
            return HostStatus(host.name, host.address, container.status, None, False)
        state = _systemd_state(container)
        failed = _failed_units(container) if state == "degraded" else ()
        return HostStatus(host.name, host.address, container.status, state, self._ssh_reachable(host), failed)

    def _ssh_reachable(self, host: TestHost) -> bool:
        try:
            self._ssh_probe(host.address, timeout=5)
        except (OSError, paramiko.SSHException):
            return False
        return True


def _host_of(container: Container) -> TestHost:
    return TestHost(name=container.labels[LABEL_HOST], address=container.labels[LABEL_ADDRESS])


def _systemd_state(container: Container) -> str:
    # Non-zero exit codes are expected (any state but "running"): the word on stdout is the answer,
    # and stdout stays empty while systemd cannot answer yet.
    _, (stdout, _) = container.exec_run(["systemctl", "is-system-running"], demux=True)
    return (stdout or b"").decode(errors="replace").strip()


def _failed_units(container: Container) -> tuple[str, ...]:
    _, output = container.exec_run(["systemctl", "list-units", "--failed", "--plain", "--no-legend"])
    return tuple(line.split()[0] for line in output.decode(errors="replace").splitlines() if line.strip())
