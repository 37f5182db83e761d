"""Issue 2's security figure, measured: `lynis audit system --quick` in a provisioned test host and in
a stock one booted from the same image, side by side in one run (bench/security.py does the work and
prints the figures; `pytest -s` shows them here too).

Measured on the 2-core CI machine: stock 59, provisioned 77 (+18); projection 82.

Why 77 and not 80 in a container: the deploy writes the plan's kernel- and network-hardening sysctls
to sysctl.d but defers applying them, because in a container they are the machine's kernel settings
(/proc/sys is read-only; see deferred.json). lynis's KRNL-6000 therefore reads the machine's values
and misses 12 keys the plan sets to exactly the value lynis expects: on a host that owns its kernel
that is 12 more points, index 82, which the projection test asserts. The rest of the gap is equally
container-bound (no separate partitions, the runtime's own /proc and /dev mounts, no auditd or
process accounting, AppArmor off) or declined on purpose, each with its reason in
bench/security.py's LEFT_AS_IS: 80 in a container would take measures that hurt a chain-node host
(password expiry locking out key-only accounts, AllowUsers locking out accounts the inventory does
not know, AIDE pulling in a mail server, a rootkit scanner's upgrade noise).
"""

from __future__ import annotations

import importlib.util
import sys

import docker
import docker.errors
import pytest

from mevfleet import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("lynis")]

# Each hardening item and the lynis finding it clears (the test ids it is scored by).
CLEARED = {
    "AUTH-9230": "login.defs: SHA_CRYPT rounds",
    "AUTH-9262": "libpam-pwquality",
    "AUTH-9328": "login.defs: UMASK 027",
    "BANN-7126": "legal banner in /etc/issue",
    "BANN-7130": "legal banner in /etc/issue.net (sshd Banner)",
    "DEB-0280": "libpam-tmpdir",
    "DEB-0811": "apt-listchanges",
    "DEB-0831": "needrestart (list only)",
    "FILE-7524": "cron and sshd_config private to root",
    "KRNL-5820": "no core dumps (limits.d, coredump.conf.d)",
    "PKGS-7370": "debsums, weekly",
    "PKGS-7420": "unattended-upgrades, security only",
    "STRG-1846": "FireWire storage refused",
    "USB-1000": "USB storage refused",
}
CONTAINER_FLOOR = 75  # measured 77; lynis and the image are pinned, so a drop below is a regression


def _bench():
    spec = importlib.util.spec_from_file_location("bench_security", REPO_ROOT / "bench" / "security.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


security = _bench()


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker engine unreachable ({exc}); `make test` starts it through deploy/bootstrap.sh")
    result = security.measure(tmp_path_factory.mktemp("lynis"))
    print("\n" + security.render(result))
    return result


def test_provisioned_host_scores_strictly_higher(comparison):
    stock, provisioned = comparison.stock, comparison.provisioned
    assert provisioned.index > stock.index, security.render(comparison)
    assert provisioned.index >= CONTAINER_FLOOR, security.render(comparison)


def test_provisioned_host_reaches_80_where_it_owns_its_kernel(comparison):
    assert comparison.kernel_points(), "no deferred sysctl matches lynis: has the plan or the profile changed?"
    assert comparison.projected_index >= 80, security.render(comparison)


def test_each_hardening_item_clears_its_finding(comparison):
    stock, provisioned = comparison.stock.flagged(), comparison.provisioned.flagged()
    assert set(CLEARED) <= stock, f"stock no longer flags {set(CLEARED) - stock}: re-measure the baseline"
    still = {test: CLEARED[test] for test in CLEARED if test in provisioned}
    assert not still, f"still flagged on the provisioned host: {still}"


def test_everything_still_flagged_has_a_reason(comparison):
    unexplained = comparison.provisioned.flagged() - set(security.LEFT_AS_IS)
    assert not unexplained, f"new lynis findings on the provisioned host, fix or explain: {unexplained}"
