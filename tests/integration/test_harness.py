"""The devnet harness against the real Docker engine: image, boot, SSH, mirror access, stop/start, down.

Runs on its own network and subnet with a temporary state dir, so it never touches the devnet fleet.
The tests share one module-scoped pair of hosts and run in file order; `test_down_removes_everything`
is last on purpose. Under pytest-xdist, use `--dist loadgroup` to keep them on one worker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import paramiko
import pytest

from mevfleet.devnet import Harness, HarnessError, TestHost
from mevfleet.devnet.harness import LABEL_HARNESS
from mevfleet.devnet.image import IMAGE_REPOSITORY, recipe_digest

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devnet-harness")]

NETWORK = "mevfleet-harness-test"
SUBNET = "172.30.88.0/24"
HOSTS = (TestHost("harness-a", "172.30.88.10"), TestHost("harness-b", "172.30.88.11"))


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"Docker engine unreachable ({exc}); run deploy/bootstrap.sh")
    return client


@pytest.fixture(scope="module")
def harness(docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=tmp_path_factory.mktemp("devnet-state"))
    harness.down()  # leftovers of an interrupted run
    harness.up(HOSTS)
    yield harness
    harness.down()


def ssh(harness: Harness, host: TestHost, command: str) -> tuple[int, str]:
    """Run a command as root with the harness key, checking the host key against the harness's file."""
    with paramiko.SSHClient() as client:
        client.load_host_keys(str(harness.known_hosts_path))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            host.address,
            username="root",
            key_filename=str(harness.key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        _, stdout, _ = client.exec_command(command, timeout=120)
        output = stdout.read().decode()
        return stdout.channel.recv_exit_status(), output


def test_image_is_tagged_by_recipe_hash(harness: Harness, docker_client: docker.DockerClient) -> None:
    started = time.monotonic()
    tag = harness.ensure_image()
    assert time.monotonic() - started < 5, "a cached image must not be rebuilt"
    assert re.fullmatch(rf"{IMAGE_REPOSITORY}:[0-9a-f]{{12}}", tag)
    assert tag == f"{IMAGE_REPOSITORY}:{recipe_digest()}"
    assert docker_client.images.get(tag).attrs["Config"]["Cmd"] == ["/sbin/init"]


def test_hosts_boot_systemd_and_answer_ssh(harness: Harness) -> None:
    statuses = {status.name: status for status in harness.status()}
    assert sorted(statuses) == sorted(host.name for host in HOSTS)
    for status in statuses.values():
        assert status.container_state == "running"
        assert status.systemd_state in {"running", "degraded"}, status.failed_units
        assert status.ssh_reachable


def test_root_login_with_harness_key(harness: Harness) -> None:
    for host in HOSTS:
        assert ssh(harness, host, "id -u") == (0, "0\n")
    assert harness.key_path.stat().st_mode & 0o777 == 0o600


def test_hostnames_and_addresses_are_as_requested(harness: Harness, docker_client: docker.DockerClient) -> None:
    for host in HOSTS:
        assert ssh(harness, host, "hostname") == (0, f"{host.name}\n")
        _, addresses = ssh(harness, host, "ip -4 -o addr show")
        assert f"inet {host.address}/24" in addresses
        assert docker_client.containers.get(f"mevfleet-{host.name}").labels[LABEL_HARNESS] == NETWORK
    assert [status.address for status in harness.status()] == [host.address for host in HOSTS]


def test_each_host_has_its_own_identity(harness: Harness) -> None:
    host_keys = paramiko.HostKeys(str(harness.known_hosts_path))
    assert len({host_keys.lookup(host.address)["ssh-ed25519"].get_base64() for host in HOSTS}) == len(HOSTS)
    machine_ids = {ssh(harness, host, "cat /etc/machine-id")[1] for host in HOSTS}
    assert len(machine_ids) == len(HOSTS)


def test_host_reaches_the_debian_mirror(harness: Harness) -> None:
    exit_code, output = ssh(harness, HOSTS[0], "apt-get update 2>&1")
    assert exit_code == 0, output


def test_up_again_changes_nothing(harness: Harness, docker_client: docker.DockerClient) -> None:
    def started_at() -> dict[str, str]:
        containers = docker_client.containers.list(filters={"label": f"{LABEL_HARNESS}={NETWORK}"})
        return {container.id: container.attrs["State"]["StartedAt"] for container in containers}

    before = started_at()
    harness.up(HOSTS)
    assert started_at() == before


def test_stopped_host_starts_again_with_ssh(harness: Harness) -> None:
    host = HOSTS[1]
    harness.stop(host.name)
    stopped = {status.name: status for status in harness.status()}[host.name]
    assert stopped.container_state == "exited"
    assert not stopped.ssh_reachable
    harness.start(host.name)
    assert ssh(harness, host, "id -u") == (0, "0\n")


def test_existing_network_with_another_subnet_is_refused(harness: Harness, tmp_path: Path) -> None:
    clash = Harness(network=NETWORK, subnet="172.30.85.0/24", state_dir=tmp_path)
    with pytest.raises(HarnessError, match="exists with subnet"):
        clash.ensure_network()


def test_invalid_hosts_are_refused_before_docker_is_touched(tmp_path: Path) -> None:
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=tmp_path)
    bad = [
        TestHost("a", "172.30.88.1"),  # the gateway
        TestHost("b", "10.0.0.5"),  # outside the subnet
        TestHost("Not_A_Hostname", "172.30.88.20"),
        TestHost("c", "172.30.88.20"),  # same address as the previous host
    ]
    with pytest.raises(HarnessError) as error:
        harness.up(bad)
    message = str(error.value)
    for expected in ("gateway", "not a host address", "hostname label", "more than one host"):
        assert expected in message
    assert not harness.key_path.exists()


def test_down_removes_everything(harness: Harness, docker_client: docker.DockerClient) -> None:
    harness.down()
    assert docker_client.containers.list(all=True, filters={"label": f"{LABEL_HARNESS}={NETWORK}"}) == []
    assert [net for net in docker_client.networks.list(names=[NETWORK]) if net.name == NETWORK] == []
    assert harness.status() == []
    assert not harness.known_hosts_path.exists()
