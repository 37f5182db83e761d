"""The agent's configuration: every source validated, every refusal names its field, secrets stay files."""

import json
import os
from pathlib import Path

import pytest
import yaml

from mevagent.config import ENV_NAMES, ConfigError, RiskLimits, load_config, parse_env_file, read_secret


def _secret(path: Path, content: str = "0x" + "11" * 32, mode: int = 0o600) -> Path:
    path.write_text(content)
    os.chmod(path, mode)
    return path


@pytest.fixture
def base(tmp_path: Path) -> dict:
    return {
        "state_dir": str(tmp_path / "state"),
        "api": {"token_file": str(_secret(tmp_path / "api-token", "t" * 40))},
        "chains": [
            {
                "name": "ethereum",
                "chain_id": 1,
                "ipc_path": "/run/reth/reth.ipc",
                "ws_url": "ws://127.0.0.1:8546",
                "max_gas_price_gwei": 200,
                "endpoints": [{"name": "flashbots", "url": "https://relay.flashbots.net", "timeout_ms": 400}],
            },
            {"name": "arbitrum", "chain_id": 42161, "ws_url": "ws://127.0.0.1:8548", "max_gas_price_gwei": 5},
        ],
    }


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _refused(tmp_path: Path, data: dict, **sources: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data), **sources)
    return str(err.value)


def test_minimal_config_is_dry_run_on_loopback(tmp_path: Path, base: dict) -> None:
    config = load_config(_write(tmp_path, base))
    assert [c.live for c in config.chains] == [False, False]
    assert config.api.bind == "127.0.0.1"
    assert config.risk.max_consecutive_failures == 5
    assert config.chain("ethereum").max_gas_price_wei == 200 * 10**9
    assert config.chain("ethereum").endpoints[0].timeout_ms == 400
    assert config.strategies["dex_arb"].min_profit_threshold == 5.0


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["chains"][0].update(max_gas_price_gwei=-1), "chains.ethereum.max_gas_price_gwei"),
        (lambda d: d["chains"][0].update(chain_id=0), "chains.ethereum.chain_id"),
        (lambda d: d["chains"][1].update(ws_url="http://x"), "chains.arbitrum.ws_url"),
        (
            lambda d: d["chains"][0]["endpoints"][0].update(timeout_ms=0),
            "chains.ethereum.endpoints.flashbots.timeout_ms",
        ),
        (lambda d: d["chains"][0]["endpoints"][0].update(url="ftp://x"), "chains.ethereum.endpoints.flashbots.url"),
        (lambda d: d["chains"][0].update(colour="red"), "chains.ethereum.colour: unknown key"),
        (lambda d: d.update(risk={"max_daily_loss_usd": "lots"}), "risk.max_daily_loss_usd"),
        (lambda d: d.update(risk={"max_slippage_bps": float("nan")}), "risk.max_slippage_bps"),
        (lambda d: d.update(risk={"max_consecutive_failures": 0}), "risk.max_consecutive_failures"),
        (lambda d: d.update(risk={"max_dayly_loss_usd": 5}), "risk.max_dayly_loss_usd: unknown key"),
        (lambda d: d.update(strategies={"dex_arb": {"min_profit_bps": -1}}), "strategies.dex_arb.min_profit_bps"),
        (lambda d: d.update(strategies={"dex_arb": {"chains": ["solana"]}}), "strategies.dex_arb.chains"),
        (lambda d: d["api"].update(bind="localhost:80"), "api.bind"),
        (lambda d: d.update(gas={"builder_payment_share": 1.0}), "gas.builder_payment_share"),
        (lambda d: d["chains"][1].update(ws_url=None), "chains.arbitrum: set ipc_path or ws_url"),
        (lambda d: d["chains"][0].update(live=True), "chains.ethereum: live: true needs signing_key_file"),
        (lambda d: d["chains"][1].update(name="ethereum"), "chain names repeat"),
        (lambda d: d.update(chains=[]), "chains: Tuple should have at least 1 item"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
    ],
)
def test_every_invalid_value_is_refused_naming_its_field(tmp_path: Path, base: dict, edit, field: str) -> None:
    edit(base)
    assert field in _refused(tmp_path, base)


def test_risk_limits_must_be_consistent(tmp_path: Path, base: dict) -> None:
    base["risk"] = {"max_position_size_usd": 100_000, "max_total_exposure_usd": 50_000}
    assert "max_position_size_usd 100000.0 exceeds max_total_exposure_usd" in _refused(tmp_path, base)


def test_key_files_looser_than_0600_are_refused(tmp_path: Path, base: dict) -> None:
    key = _secret(tmp_path / "eth.key", mode=0o640)
    base["chains"][0]["signing_key_file"] = str(key)
    message = _refused(tmp_path, base)
    assert "chains.ethereum.signing_key_file" in message and "mode 0640, looser than 0600" in message
    assert "11" * 32 not in message
    os.chmod(key, 0o600)
    assert load_config(_write(tmp_path, base)).chain("ethereum").signing_key_file == key
    os.chmod(base["api"]["token_file"], 0o644)
    assert "api.token_file" in _refused(tmp_path, base)


def test_missing_key_file_is_refused(tmp_path: Path, base: dict) -> None:
    base["chains"][0]["searcher_key_file"] = str(tmp_path / "nope.key")
    assert "chains.ethereum.searcher_key_file" in _refused(tmp_path, base)


def test_live_is_per_chain_and_needs_a_key_and_an_endpoint(tmp_path: Path, base: dict) -> None:
    base["chains"][0].update(live=True, signing_key_file=str(_secret(tmp_path / "k")))
    config = load_config(_write(tmp_path, base))
    assert [c.live for c in config.chains] == [True, False]
    base["chains"][1].update(live=True, signing_key_file=str(_secret(tmp_path / "k2")))
    assert "chains.arbitrum: live: true needs at least one endpoint" in _refused(tmp_path, base)


def test_read_secret_rechecks_mode_and_never_echoes(tmp_path: Path) -> None:
    token = _secret(tmp_path / "token", " s3cret \n")
    assert read_secret(token) == b"s3cret"
    os.chmod(token, 0o604)
    with pytest.raises(ValueError, match="looser than 0600") as err:
        read_secret(token)
    assert "s3cret" not in str(err.value)


def test_seed_risk_and_strategies_json(tmp_path: Path, base: dict) -> None:
    risk = tmp_path / "risk.json"
    risk.write_text(
        json.dumps(
            {
                "max_position_size": 2000,
                "max_daily_loss": 300,
                "max_daily_loss_per_chain": 100,
                "max_slippage": 0.005,
                "max_gas_price": 80,
                "max_consecutive_failures": 7,
                "daily_profit_target": 900,
            }
        )
    )
    strategies = tmp_path / "strategies.json"
    strategies.write_text(json.dumps({"dex_arb": {"min_profit_bps": 25, "min_profit_threshold": 12.5}}))
    config = load_config(_write(tmp_path, base), risk_json=risk, strategies_json=strategies)
    assert config.risk.max_position_size_usd == 2000
    assert config.risk.max_daily_loss_usd == 300
    assert config.risk.max_slippage_bps == pytest.approx(50)
    assert config.risk.max_consecutive_failures == 7
    assert [c.max_gas_price_gwei for c in config.chains] == [80, 80]
    assert config.profit.daily_profit_target_usd == 900
    dex_arb = config.strategies["dex_arb"]
    assert (dex_arb.min_profit_bps, dex_arb.min_profit_threshold) == (25, 12.5)


def test_seed_json_refuses_unknown_and_invalid(tmp_path: Path, base: dict) -> None:
    risk = tmp_path / "risk.json"
    risk.write_text(json.dumps({"max_position_sise": 1}))
    assert "max_position_sise: unknown name" in _refused(tmp_path, base, risk_json=risk)
    risk.write_text(json.dumps({"max_daily_loss": "a lot"}))
    assert "max_daily_loss: expected a number" in _refused(tmp_path, base, risk_json=risk)
    risk.write_text(json.dumps({"max_daily_loss": -5}))
    assert "risk.max_daily_loss_usd" in _refused(tmp_path, base, risk_json=risk)
    risk.write_text("[1, 2]")
    assert "expected a JSON object" in _refused(tmp_path, base, risk_json=risk)
    strategies = tmp_path / "strategies.json"
    strategies.write_text(json.dumps({"dex_arb": {"min_profit": 3}}))
    assert "strategies.dex_arb.min_profit: unknown key" in _refused(tmp_path, base, strategies_json=strategies)


def test_seed_env_names(tmp_path: Path, base: dict) -> None:
    assert {"MAX_POSITION_SIZE", "MIN_PROFIT_THRESHOLD", "MAX_DAILY_LOSS", "MAX_GAS_PRICE", "MAX_SLIPPAGE"} <= ENV_NAMES
    env = tmp_path / ".env"
    env.write_text(
        "# seed settings\nMAX_POSITION_SIZE=1500\nexport MIN_PROFIT_THRESHOLD='7.5'\n"
        'MAX_DAILY_LOSS="400"\nMAX_DAILY_LOSS_PER_CHAIN=150\nMAX_SLIPPAGE=0.01\nMAX_GAS_PRICE=120\n\n'
    )
    config = load_config(_write(tmp_path, base), env_file=env)
    assert config.risk.max_position_size_usd == 1500
    assert config.risk.max_daily_loss_usd == 400
    assert config.risk.max_slippage_bps == pytest.approx(100)
    assert config.strategies["dex_arb"].min_profit_threshold == 7.5
    assert config.chain("arbitrum").max_gas_price_gwei == 120


def test_env_file_overrides_json_which_overrides_yaml(tmp_path: Path, base: dict) -> None:
    base["risk"] = {"max_position_size_usd": 1000}
    risk = tmp_path / "risk.json"
    risk.write_text(json.dumps({"max_position_size": 2000}))
    env = tmp_path / ".env"
    env.write_text("MAX_POSITION_SIZE=3000\n")
    assert load_config(_write(tmp_path, base), risk_json=risk).risk.max_position_size_usd == 2000
    assert load_config(_write(tmp_path, base), risk_json=risk, env_file=env).risk.max_position_size_usd == 3000


def test_env_file_refuses_secrets_unknown_names_and_junk(tmp_path: Path, base: dict) -> None:
    env = tmp_path / ".env"
    env.write_text("PRIVATE_KEY=0xdeadbeefcafe\n")
    message = _refused(tmp_path, base, env_file=env)
    assert "PRIVATE_KEY: secrets are never values" in message and "deadbeef" not in message
    env.write_text("MAX_POSITON_SIZE=5\n")
    assert "MAX_POSITON_SIZE: unknown name" in _refused(tmp_path, base, env_file=env)
    env.write_text("max_position_size=5\n")
    assert "max_position_size: unknown name" in _refused(tmp_path, base, env_file=env)
    env.write_text("MAX_DAILY_LOSS=ten\n")
    assert "MAX_DAILY_LOSS: expected a number" in _refused(tmp_path, base, env_file=env)
    env.write_text("this line is 0xsecret junk\n")
    message = _refused(tmp_path, base, env_file=env)
    assert ".env:1: not a NAME=value line" in message and "0xsecret" not in message
    env.write_text("MAX_DAILY_LOSS=1\nMAX_DAILY_LOSS=2\n")
    with pytest.raises(ConfigError, match="MAX_DAILY_LOSS is set twice"):
        parse_env_file(env)


def test_updated_revalidates(tmp_path: Path) -> None:
    limits = RiskLimits()
    assert limits.updated({"max_slippage_bps": 10}).max_slippage_bps == 10
    with pytest.raises(ValueError, match="max_slippage_bps"):
        limits.updated({"max_slippage_bps": -1})
    assert limits.max_slippage_bps == 50


def test_not_yaml_or_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
    path.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not YAML"):
        load_config(path)
