"""The tuning and limits the clients' documentation asks for, pinned as literals.

Every other test compares a host with its plan or the plan with the catalog, so a wrong value in the
catalog (say `net.core.busy_poll: 0`) would pass all of them. These literals are the documented values;
a change here is a change of what the fleet promises, made on purpose.
"""

from __future__ import annotations

import json

import pytest

from mevfleet.inventory import parse_inventory
from mevfleet.plan import compile_plan

from .conftest import SOLANA_AGENT

# The default profile: low-latency networking, as the latency-tuning guides for searcher hosts set it.
DEFAULT_PROFILE = {
    "net.core.busy_read": "50",  # µs of busy polling on blocking reads
    "net.core.busy_poll": "50",  # µs of busy polling in poll/select
    "kernel.timer_migration": "0",  # timers stay on the core that armed them (pinned cores)
    "net.core.rmem_max": "67108864",
    "net.core.wmem_max": "67108864",
    "net.core.rmem_default": "262144",
    "net.core.wmem_default": "262144",
    "net.core.optmem_max": "134217728",
    "net.core.netdev_max_backlog": "50000",
    "net.ipv4.tcp_rmem": "4096 87380 67108864",
    "net.ipv4.tcp_wmem": "4096 65536 67108864",
    "net.ipv4.tcp_slow_start_after_idle": "0",
    "net.ipv4.tcp_fastopen": "3",
    "vm.swappiness": "1",
}

# Per chain: what each client's own docs ask for (sysctls) on top of the profile.
CHAIN_SYSCTLS = {
    # Erigon "Known issues": MDBX maps many areas and needs overcommit.
    "ethereum": {"vm.max_map_count": "16777216", "vm.overcommit_memory": "1"},
    # Agave validator-start: 128 MiB socket buffers, a million map areas and open files.
    "solana": {
        "net.core.rmem_max": "134217728",
        "net.core.wmem_max": "134217728",
        "net.core.rmem_default": "134217728",
        "net.core.wmem_default": "134217728",
        "vm.max_map_count": "1000000",
    },
}

# Per chain: LimitNOFILE (and LimitMEMLOCK in bytes where documented).
CHAIN_LIMITS = {
    "ethereum": (1048576, None),
    "arbitrum": (1048576, None),
    "optimism": (1048576, None),
    "base": (1048576, None),
    "polygon": (1048576, None),
    "bsc": (1048576, None),
    "avalanche": (65535, None),  # avalanche-deploy's unit; AvalancheGo refuses an --fd-limit above the max
    "solana": (1000000, 2000000000),  # Agave: LimitNOFILE=1000000, LimitMEMLOCK=2000000000
}

HUGEPAGES_DEFAULT = 2048  # 2 MiB pages: 4 GiB reserved unless the host opts out


def host_plan(chain: str):
    fleet = f"fleet: {{agent: {json.dumps(SOLANA_AGENT)}}}\n"
    inventory = parse_inventory(f"{fleet}hosts: {{h: {{chains: [{chain}], address: 10.0.0.5}}}}", "pinned.yml")
    return compile_plan(inventory).hosts["h"]


def test_default_profile_is_the_documented_low_latency_profile():
    sysctls = host_plan("arbitrum").sysctls()
    assert {key: sysctls.get(key) for key in DEFAULT_PROFILE} == DEFAULT_PROFILE


@pytest.mark.parametrize("chain", sorted(CHAIN_SYSCTLS))
def test_chain_sysctls_are_the_clients_documented_values(chain: str):
    sysctls = host_plan(chain).sysctls()
    assert {key: sysctls.get(key) for key in CHAIN_SYSCTLS[chain]} == CHAIN_SYSCTLS[chain]


@pytest.mark.parametrize("chain", sorted(CHAIN_LIMITS))
def test_chain_limits_are_the_clients_documented_values(chain: str):
    plan = host_plan(chain)
    nofile, memlock = CHAIN_LIMITS[chain]
    # The host's default is the largest of its chains' and the profile's 65536 baseline.
    assert plan.nofile == max(nofile, 65536)
    if memlock is not None:
        assert plan.memlock_bytes == memlock
    # fs.nr_open may never be below the open-file limit, or units fail to start.
    assert int(plan.sysctls().get("fs.nr_open", plan.nofile)) >= plan.nofile


def test_hugepages_thp_and_governor_defaults():
    plan = host_plan("ethereum")
    assert plan.hugepages == HUGEPAGES_DEFAULT
    assert plan.thp == "madvise"  # 'always' stalls in compaction
    assert plan.cpu_governor == "performance"
