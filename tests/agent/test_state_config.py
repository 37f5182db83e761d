"""Bad state-syncer and collector configuration is refused before anything starts, naming the field."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from mevagent.collectors.evm import EvmCollectorConfig
from mevagent.state.config import FactoryConfig, SyncConfig

FACTORY = "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f"


def sync(**factory: object) -> SyncConfig:
    return SyncConfig(factories=({"kind": "v2", "address": FACTORY, "fork": "uniswap_v2", **factory},))


def test_a_valid_config_normalizes_addresses_and_takes_the_fork_fee_from_forks_yml() -> None:
    config = sync()
    assert config.factories[0].address == FACTORY.lower()
    assert config.reorg_depth == 64 and config.reconcile_per_block is None


@pytest.mark.parametrize(
    ("factory", "field", "message"),
    [
        ({"fork": "nope"}, "factories.0", "not in amm/forks.yml"),
        ({"kind": "v3", "fork": "uniswap_v2"}, "factories.0", "not in amm/v3_forks.yml"),
        ({"kind": "v2", "fork": "pancakeswap_v3"}, "factories.0", "not in amm/forks.yml"),
        ({"address": "0x1234"}, "factories.0.address", "pattern"),
        ({"kind": "v4"}, "factories.0.kind", "'v2' or 'v3'"),
        ({"from_block": -1}, "factories.0.from_block", "greater than or equal"),
        ({"fee": 3}, "factories.0.fee", "Extra inputs"),
    ],
)
def test_bad_factories_are_refused_naming_the_field(factory: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        sync(**factory)
    error = raised.value.errors()[0]
    assert ".".join(str(part) for part in error["loc"]) == field
    assert message in str(raised.value)


def test_every_fork_of_the_tables_is_accepted_per_pool_fees_included() -> None:
    # Camelot and BiSwap pairs keep their own fee, which the syncer reads from each pair.
    for fork in ("camelot", "biswap", "pancakeswap_v2"):
        assert sync(fork=fork).factories[0].fork == fork
    for fork in ("uniswap_v3", "pancakeswap_v3"):
        assert sync(kind="v3", fork=fork).factories[0].kind == "v3"


def test_sync_and_collector_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        SyncConfig(factories=(FactoryConfig(kind="v2", address=FACTORY, fork="uniswap_v2"),) * 2)
    with pytest.raises(ValidationError, match="factories"):
        SyncConfig(factories=())
    with pytest.raises(ValidationError, match="reorg_depth"):
        SyncConfig(factories=sync().factories, reorg_depth=0)
    with pytest.raises(ValidationError, match="set ipc_path or ws_url"):
        EvmCollectorConfig(chain="ethereum", sync=sync())
    with pytest.raises(ValidationError, match="ws_url"):
        EvmCollectorConfig(chain="ethereum", ws_url="http://127.0.0.1:8545", sync=sync())
    config = EvmCollectorConfig(
        chain="ethereum", ipc_path=Path("/run/ethereum/node.ipc"), ws_url="ws://127.0.0.1:8546", sync=sync()
    )
    assert config.endpoints == ["/run/ethereum/node.ipc", "ws://127.0.0.1:8546"]  # IPC first
