"""The bridge monitor's Across topics and layouts against the SpokePool ABI published in npm
@across-protocol/contracts@5.0.27: testbed/contracts/AcrossSpokePool.events.json holds that ABI's four
deposit and fill events unchanged (`npm pack`, dist/evm/artifacts/SpokePool.sol/SpokePool.json; the
tarball's integrity and the file's sha256 are recorded in it)."""

from __future__ import annotations

import json

import pytest
from eth_utils import event_abi_to_log_topic
from eth_utils.abi import collapse_if_tuple
from mevcontrol.bridge_monitor import (
    ACROSS_DEPOSITS,
    ACROSS_FILLS,
    FILLED_RELAY,
    FILLED_V3_RELAY,
    FUNDS_DEPOSITED,
    TOPICS,
    V3_FUNDS_DEPOSITED,
    evm_address,
)

from testbed.evm import CONTRACTS

PUBLISHED = json.loads((CONTRACTS / "AcrossSpokePool.events.json").read_text())
EVENTS = {e["name"]: e for e in PUBLISHED["events"]}
OURS = {"FundsDeposited": FUNDS_DEPOSITED, "V3FundsDeposited": V3_FUNDS_DEPOSITED, "FilledRelay": FILLED_RELAY,
        "FilledV3Relay": FILLED_V3_RELAY}  # fmt: skip


def test_the_extract_names_its_package() -> None:
    assert (PUBLISHED["package"], PUBLISHED["version"]) == ("@across-protocol/contracts", "5.0.27")
    assert set(EVENTS) == set(OURS)


@pytest.mark.parametrize("name", sorted(OURS))
def test_across_topic_is_the_published_events(name: str) -> None:
    assert "0x" + event_abi_to_log_topic(EVENTS[name]).hex() == OURS[name]


@pytest.mark.parametrize("name", sorted(OURS))
def test_across_keys_are_where_the_decoder_reads_them(name: str) -> None:
    """topics[1] and topics[2]: a deposit's destination chain id and deposit id, a fill's origin chain id and
    deposit id; a deposit's data decoded with its published types, tokens first."""
    inputs = EVENTS[name]["inputs"]
    indexed = [i["name"] for i in inputs if i["indexed"]]
    data = [i for i in inputs if not i["indexed"]]
    if OURS[name] in ACROSS_DEPOSITS:
        assert indexed == ["destinationChainId", "depositId", "depositor"]
        assert [collapse_if_tuple(i) for i in data] == list(ACROSS_DEPOSITS[OURS[name]])
        assert [i["name"] for i in data[:2]] == ["inputToken", "outputToken"]
    else:
        assert OURS[name] in ACROSS_FILLS
        assert indexed == ["originChainId", "depositId", "relayer"]
    assert OURS[name] in TOPICS["across"]


def test_evm_address_from_an_upgraded_events_bytes32() -> None:
    address = "0x" + "ab" * 20
    assert evm_address(bytes(12) + bytes.fromhex(address[2:])) == address
    assert evm_address(address) == address  # a V3 event's
    solana = bytes(range(1, 33))  # not an EVM address: kept whole, matching no EVM token
    assert evm_address(solana) == "0x" + solana.hex()
