"""What the agent needs beyond the node (factories, contract, prices) is validated with the rest of the
config, naming the field; what validates but cannot run is refused at start (exit 2), naming the field."""

import os
from pathlib import Path

import pytest

from mevagent.app import StartupError, execution_settings
from mevagent.config import ConfigError, GasSettings, validate
from mevagent.executor.keys import write_new_key_file
from mevagent.strategies.dex_arb import DexArbSettings, cycle_tokens, dex_arb_config

WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"  # mainnet WETH: the fixture is chain id 1
USDC = "0x" + "bb" * 20
FACTORY = "0x" + "cc" * 20


@pytest.fixture
def base(tmp_path: Path) -> dict:
    token = tmp_path / "token"
    token.write_text("t" * 40)
    os.chmod(token, 0o600)
    return {
        "state_dir": str(tmp_path / "state"),
        "api": {"token_file": str(token)},
        "chains": [
            {
                "name": "ethereum",
                "chain_id": 1,
                "ipc_path": "/run/reth/reth.ipc",
                "max_gas_price_gwei": 100,
                "endpoints": [{"name": "flashbots", "url": "https://relay.flashbots.net"}],
                "factories": [
                    {"kind": "v2", "address": FACTORY, "fork": "uniswap_v2"},
                    {"kind": "v3", "address": "0x" + "dd" * 20, "fork": "uniswap_v3", "from_block": 12369621},
                ],
                "wrapped_native": WETH,
                "pricing": {"native_token": WETH, "tokens": {WETH: {"usd": 3000, "decimals": 18}}},
            }
        ],
    }


def _refused(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate(data)
    return str(err.value)


def test_a_full_chain_validates_and_defaults_its_base_token_to_wrapped_native(base: dict) -> None:
    config = validate(base)
    chain = config.chain("ethereum")
    assert [f.kind for f in chain.factories] == ["v2", "v3"] and chain.factories[0].address == FACTORY
    assert cycle_tokens(chain, config.strategies["dex_arb"]) == (WETH,)  # type: ignore[arg-type]
    assert chain.sync.reorg_depth == 64 and config.engine.max_in_flight == 8


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda c: c["factories"][0].update(fork="nope"),
            "chains.ethereum.factories.0: fork: 'nope' is not in amm/forks.yml",
        ),
        (lambda c: c["factories"][0].update(kind="v4"), "chains.ethereum.factories.0.kind"),
        (lambda c: c["factories"][1].update(address=FACTORY), "chains.ethereum: factories: an address is listed twice"),
        (lambda c: c.update(contract="0x1234"), "chains.ethereum.contract"),
        (lambda c: c.update(wrapped_native=USDC, chain_id=31337), "chains.ethereum: pricing.native_token"),
        (lambda c: c.update(wrapped_native=USDC), f"wrapped_native {USDC} is not ethereum:WETH"),
        (lambda c: c.update(base_tokens=[USDC]), "chains.ethereum: base_tokens ['" + USDC + "'] have no entry"),
        (lambda c: c["pricing"].update(native_token=USDC), "chains.ethereum.pricing"),
        (lambda c: c["sync"].update(reorg_depth=0), "chains.ethereum.sync.reorg_depth"),
        (lambda c: c.update(max_head_age_s=0), "chains.ethereum.max_head_age_s"),
    ],
)
def test_bad_chain_values_are_refused_naming_the_field(base: dict, edit, field: str) -> None:
    chain = base["chains"][0]
    chain.setdefault("sync", {})
    edit(chain)
    assert field in _refused(base)


def test_strategy_base_tokens_must_be_priced_where_the_chain_has_prices(base: dict) -> None:
    base["strategies"] = {"dex_arb": {"base_tokens": [USDC]}}
    assert "strategies.dex_arb.base_tokens" in _refused(base) and "chains.ethereum.pricing.tokens" in _refused(base)
    base["engine"] = {"max_in_flight": 0}
    base["strategies"] = {}
    assert "engine.max_in_flight" in _refused(base)


def test_dry_run_without_endpoints_gets_an_executor_that_has_nowhere_to_send(base: dict) -> None:
    base["chains"][0]["endpoints"] = []
    settings = execution_settings(validate(base).chain("ethereum"), GasSettings(priority_fee_gwei=1.5))
    assert settings.live is False and settings.builders == () and settings.sequencer_url is None
    assert settings.priority_fee_wei == 1_500_000_000 and settings.wrapped_native == WETH


def test_live_chains_that_cannot_execute_are_refused_at_start_naming_the_field(base: dict, tmp_path: Path) -> None:
    key = tmp_path / "eth.key"
    write_new_key_file(key)
    base["chains"][0].update(live=True, signing_key_file=str(key))
    with pytest.raises(StartupError, match=r"chains\.ethereum\.contract: live: true needs the deployed ArbExecutor"):
        execution_settings(validate(base).chain("ethereum"), GasSettings())
    base["chains"][0]["contract"] = "0x" + "ee" * 20
    with pytest.raises(StartupError, match=r"chains\.ethereum\.searcher_key_file"):
        execution_settings(validate(base).chain("ethereum"), GasSettings())
    searcher = tmp_path / "eth-searcher.key"
    write_new_key_file(searcher)
    base["chains"][0]["searcher_key_file"] = str(searcher)
    settings = execution_settings(validate(base).chain("ethereum"), GasSettings())
    assert settings.live and settings.key_file == key and settings.identity_key_file == searcher


def test_strategy_settings_follow_gas_and_profit_and_pay_builders_only_where_there_are_builders(base: dict) -> None:
    chain = validate(base).chain("ethereum")
    gas = GasSettings(priority_fee_gwei=2, gas_limit_base=50_000, gas_limit_per_hop=100_000, builder_payment_share=0.4)
    strategy = DexArbSettings(min_profit_bps=5, min_profit_threshold=1.5, max_hops=2)
    settings = dex_arb_config(chain, strategy, gas)
    assert settings.base_tokens == (WETH,) and settings.max_hops == 2
    assert (settings.min_profit_bps, settings.min_profit_threshold) == (5, 1.5)
    assert settings.builder_share_bps == 4000 and settings.priority_fee_wei == 2 * 10**9
    assert settings.gas_limits == {2: 250_000, 3: 350_000}
    sequencer = chain.updated({"endpoints": [{"name": "seq", "url": "http://127.0.0.1:9", "kind": "private_tx"}]})
    assert dex_arb_config(sequencer, strategy, gas).builder_share_bps == 0
