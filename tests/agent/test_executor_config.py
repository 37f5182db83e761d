"""Execution settings are refused whole, naming the field; keys are read only from 0600 files and never shown."""

import copy
import logging
import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from mevagent.config import ChainConfig
from mevagent.executor.config import ChainExecution, from_chain_config
from mevagent.executor.keys import KeyFileError, Signer, write_new_key_file

BASE = {
    "chain": "eth",
    "chain_id": 1,
    "rpc_url": "http://127.0.0.1:8545",
    "builders": [{"name": "b", "url": "http://127.0.0.1:9"}],
}


def _refusal(**changes: object) -> str:
    with pytest.raises(ValidationError) as info:
        ChainExecution.model_validate({**BASE, **changes})
    return str(info.value)


def test_dry_run_unless_live_is_written() -> None:
    assert ChainExecution.model_validate(BASE).live is False


def test_bad_settings_name_their_field(tmp_path: Path) -> None:
    assert "contract" in _refusal(live=True, key_file=tmp_path / "k", identity_key_file=tmp_path / "i")
    assert "key_file" in _refusal(live=True, contract="0x" + "11" * 20)
    assert "identity_key_file" in _refusal(live=True, contract="0x" + "11" * 20, key_file=tmp_path / "k")
    live = {"live": True, "contract": "0x" + "11" * 20, "key_file": tmp_path / "k", "identity_key_file": tmp_path / "i"}
    assert "builders: a live bundle chain needs at least one builder endpoint" in _refusal(**live, builders=[])
    assert "sequencer_url" in _refusal(submission="sequencer", builders=[])
    assert "contract" in _refusal(contract="0x1234")
    assert "target_blocks" in _refusal(target_blocks=0)
    assert "builders.0.timeout_ms" in _refusal(builders=[{"name": "b", "url": "http://x", "timeout_ms": 0}])
    assert "privat_key" in _refusal(privat_key="0xabc")  # unknown keys are refused, not ignored
    assert "builders" in _refusal(builders=[{"name": "b", "url": "http://a"}, {"name": "b", "url": "http://c"}])


def test_builders_are_required_only_when_live(tmp_path: Path) -> None:
    # Dry-run never signs, so it never sends: a chain without endpoints still gets its simulations.
    dry = ChainExecution.model_validate({**BASE, "builders": []})
    assert (dry.live, dry.submission, dry.builders) == (False, "bundle", ())
    live = {"live": True, "contract": "0x" + "11" * 20, "key_file": tmp_path / "k", "identity_key_file": tmp_path / "i"}
    assert ChainExecution.model_validate({**BASE, **live}).live is True
    assert "builders" in _refusal(**live, builders=[])


def test_agent_chain_config_maps_onto_execution_settings(tmp_path: Path) -> None:
    key = tmp_path / "k"
    write_new_key_file(key)
    chain = ChainConfig(
        name="base",
        chain_id=8453,
        ws_url="ws://127.0.0.1:8546",
        live=True,
        max_gas_price_gwei=1,
        endpoints=[{"name": "sequencer", "url": "http://127.0.0.1:9545", "kind": "private_tx"}],
        signing_key_file=key,
    )
    settings = from_chain_config(chain, contract="0x" + "ab" * 20, rpc_url="http://127.0.0.1:8545")
    assert (settings.live, settings.submission, settings.sequencer_url) == (True, "sequencer", "http://127.0.0.1:9545")
    assert settings.key_file == key and settings.builders == ()


def test_key_files_must_be_private_and_well_formed(tmp_path: Path) -> None:
    key = tmp_path / "key"
    write_new_key_file(key)
    assert key.stat().st_mode & 0o777 == 0o600
    secret = key.read_text().strip()
    key.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        Signer.from_file(key)
    bad = tmp_path / "bad"
    bad.write_text("not-a-key-" + secret[12:])
    bad.chmod(0o600)
    with pytest.raises(KeyFileError) as info:
        Signer.from_file(bad)
    assert secret[12:] not in str(info.value) and str(bad) in str(info.value)
    with pytest.raises(KeyFileError, match="No such file"):
        Signer.from_file(tmp_path / "missing")
    with pytest.raises(FileExistsError):
        write_new_key_file(key)  # never overwrites a key


def test_a_signer_never_shows_its_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "key"
    write_new_key_file(key)
    signer = Signer.from_file(key)
    secret = key.read_text().strip().removeprefix("0x")
    logging.getLogger("test").warning("signer %s %r", signer, signer)
    assert secret not in caplog.text and signer.address in caplog.text
    for leak in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            leak(signer)
    assert not hasattr(signer, "__dict__")
    assert all(secret not in repr(getattr(signer, name, "")) for name in dir(signer) if not name.startswith("__"))
