"""The bridge monitor's Across topics and layouts against the SpokePool ABI published in npm
@across-protocol/contracts@5.0.27: testbed/contracts/AcrossSpokePool.events.json holds that ABI's four
deposit and fill events unchanged (`npm pack`, dist/evm/artifacts/SpokePool.sol/SpokePool.json; the
tarball's integrity and the file's sha256 are recorded in it). The OP Stack's the same way against npm
@eth-optimism/contracts-bedrock@0.17.3 (testbed/contracts/OpStackBridge.events.json: the
CrossDomainMessenger's and StandardBridge's events and relayMessage, from the package's forge-artifacts).
CCTP V2's against the ABIs npm @circle-fin/adapter-viem-v2@1.18.0 exports (testbed/contracts/CctpV2.events.json:
MessageTransmitterV2's and TokenMessengerV2's events), and the stand-in LocalCctpV2.sol against them.
Stargate V2's pool and TokenMessaging bus events against npm @stargatefinance/stg-evm-v2@2.0.6's artifacts
(testbed/contracts/StargateV2.events.json), and LocalStargate.sol's against them."""

from __future__ import annotations

import json

import pytest
from eth_abi import encode
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, keccak
from eth_utils.abi import collapse_if_tuple
from mevcontrol.bridge_monitor import (
    ACROSS_DEPOSITS,
    ACROSS_FILLS,
    BUS_DRIVEN,
    BUS_RODE,
    DEPOSIT_FOR_BURN_V2,
    ERC20_BRIDGE_FINALIZED,
    ERC20_BRIDGE_INITIATED,
    ETH_BRIDGE_FINALIZED,
    ETH_BRIDGE_INITIATED,
    FAILED_RELAYED_MESSAGE,
    FILLED_RELAY,
    FILLED_V3_RELAY,
    FUNDS_DEPOSITED,
    MESSAGE_RECEIVED_V2,
    MESSAGE_SENT,
    MINT_AND_WITHDRAW_V2,
    OFT_RECEIVED,
    OFT_SENT,
    RELAY_MESSAGE,
    RELAYED_MESSAGE,
    SENT_MESSAGE,
    SENT_MESSAGE_EXTENSION1,
    TOPICS,
    V3_FUNDS_DEPOSITED,
    evm_address,
    op_message_hash,
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


OP = json.loads((CONTRACTS / "OpStackBridge.events.json").read_text())
OP_EVENTS = {e["name"]: e for e in OP["messenger_events"] + OP["bridge_events"]}
OP_OURS = {"SentMessage": SENT_MESSAGE, "SentMessageExtension1": SENT_MESSAGE_EXTENSION1,
           "RelayedMessage": RELAYED_MESSAGE, "FailedRelayedMessage": FAILED_RELAYED_MESSAGE,
           "ETHBridgeInitiated": ETH_BRIDGE_INITIATED, "ERC20BridgeInitiated": ERC20_BRIDGE_INITIATED,
           "ETHBridgeFinalized": ETH_BRIDGE_FINALIZED, "ERC20BridgeFinalized": ERC20_BRIDGE_FINALIZED}  # fmt: skip


def test_the_op_stack_extract_names_its_package() -> None:
    assert (OP["package"], OP["version"]) == ("@eth-optimism/contracts-bedrock", "0.17.3")
    assert set(OP_EVENTS) == set(OP_OURS)
    assert sorted(OP_OURS.values()) == sorted(TOPICS["op_stack"])


@pytest.mark.parametrize("name", sorted(OP_OURS))
def test_op_stack_topic_is_the_published_events(name: str) -> None:
    assert "0x" + event_abi_to_log_topic(OP_EVENTS[name]).hex() == OP_OURS[name]


def test_op_stack_fields_are_where_the_decoder_reads_them() -> None:
    """SentMessage: the target indexed, then (sender, message, messageNonce, gasLimit) as data; its extension
    the value as data; a relay's hash the one indexed argument; ERC20BridgeInitiated's local and remote
    tokens the first two indexed arguments."""

    def shape(name: str) -> tuple[list[str], list[str]]:
        inputs = OP_EVENTS[name]["inputs"]
        return [i["name"] for i in inputs if i["indexed"]], [
            f"{i['type']} {i['name']}" for i in inputs if not i["indexed"]
        ]

    assert shape("SentMessage") == (
        ["target"], ["address sender", "bytes message", "uint256 messageNonce", "uint256 gasLimit"]
    )  # fmt: skip
    assert shape("SentMessageExtension1") == (["sender"], ["uint256 value"])
    assert shape("RelayedMessage") == shape("FailedRelayedMessage") == (["msgHash"], [])
    assert shape("ERC20BridgeInitiated")[0] == ["localToken", "remoteToken", "from"]


def test_op_message_hash_is_keccak_of_the_published_relay_message_call() -> None:
    """The hash is keccak256 of relayMessage's calldata, the function's selector and argument types as
    published; the nonce is versioned (1 << 240 | n)."""
    relay = OP["messenger_relay"]
    assert function_abi_to_4byte_selector(relay) == RELAY_MESSAGE
    types = [i["type"] for i in relay["inputs"]]
    assert types == ["uint256", "address", "address", "uint256", "uint256", "bytes"]
    nonce, sender, target = (1 << 240) | 7, "0x" + "11" * 20, "0x" + "22" * 20
    args = [nonce, sender, target, 10**18, 200_000, b"\x01\x02"]
    assert op_message_hash(*args) == "0x" + keccak(RELAY_MESSAGE + encode(types, args)).hex()
    assert op_message_hash(*args) != op_message_hash(7, *args[1:])  # the version is part of what is hashed


CCTP_V2 = json.loads((CONTRACTS / "CctpV2.events.json").read_text())
CCTP_V2_EVENTS = {e["name"]: e for e in CCTP_V2["message_transmitter_v2_events"] + CCTP_V2["token_messenger_v2_events"]}
CCTP_V2_OURS = {"DepositForBurn": DEPOSIT_FOR_BURN_V2, "MessageSent": MESSAGE_SENT,
                "MessageReceived": MESSAGE_RECEIVED_V2, "MintAndWithdraw": MINT_AND_WITHDRAW_V2}  # fmt: skip


def test_the_cctp_v2_extract_names_its_package() -> None:
    assert (CCTP_V2["package"], CCTP_V2["version"]) == ("@circle-fin/adapter-viem-v2", "1.18.0")
    assert set(CCTP_V2_EVENTS) == set(CCTP_V2_OURS)
    assert set(CCTP_V2_OURS.values()) <= set(TOPICS["cctp"])


@pytest.mark.parametrize("name", sorted(CCTP_V2_OURS))
def test_cctp_v2_topic_is_the_published_events(name: str) -> None:
    assert "0x" + event_abi_to_log_topic(CCTP_V2_EVENTS[name]).hex() == CCTP_V2_OURS[name]


def test_cctp_v2_fields_are_where_the_decoder_reads_them() -> None:
    """DepositForBurn: burn token, depositor and minFinalityThreshold indexed, the rest as data in the order
    decoded; MessageReceived: finalityThresholdExecuted the third indexed argument, (sourceDomain, sender,
    messageBody) as data; MintAndWithdraw: (amount, feeCollected) as data."""

    def shape(name: str) -> tuple[list[str], list[str]]:
        inputs = CCTP_V2_EVENTS[name]["inputs"]
        return [i["name"] for i in inputs if i["indexed"]], [
            f"{i['type']} {i['name']}" for i in inputs if not i["indexed"]
        ]

    assert shape("DepositForBurn") == (
        ["burnToken", "depositor", "minFinalityThreshold"],
        ["uint256 amount", "bytes32 mintRecipient", "uint32 destinationDomain", "bytes32 destinationTokenMessenger",
         "bytes32 destinationCaller", "uint256 maxFee", "bytes hookData"],
    )  # fmt: skip
    assert shape("MessageReceived") == (
        ["caller", "nonce", "finalityThresholdExecuted"], ["uint32 sourceDomain", "bytes32 sender", "bytes messageBody"]
    )  # fmt: skip
    assert shape("MintAndWithdraw") == (["mintRecipient", "mintToken"], ["uint256 amount", "uint256 feeCollected"])


def test_the_cctp_v2_stand_in_emits_the_published_events() -> None:
    """testbed/contracts/LocalCctpV2.sol's events are the package's, argument names and indexing included."""
    from .bridge_watch import stand_ins

    ours = {
        e["name"]: {**e, "inputs": [{k: i[k] for k in ("name", "type", "indexed")} for i in e["inputs"]]}
        for name in ("LocalMessageTransmitterV2", "LocalTokenMessengerV2")
        for e in stand_ins("LocalCctpV2.sol")[name][0]
        if e["type"] == "event"
    }
    for name, published in CCTP_V2_EVENTS.items():
        assert [{k: i[k] for k in ("name", "type", "indexed")} for i in published["inputs"]] == ours[name]["inputs"]


STARGATE = json.loads((CONTRACTS / "StargateV2.events.json").read_text())
STARGATE_EVENTS = {e["name"]: e for e in STARGATE["pool_events"] + STARGATE["messaging_events"]}
STARGATE_OURS = {"OFTSent": OFT_SENT, "OFTReceived": OFT_RECEIVED, "BusRode": BUS_RODE, "BusDriven": BUS_DRIVEN}


def test_the_stargate_extract_names_its_package() -> None:
    assert (STARGATE["package"], STARGATE["version"]) == ("@stargatefinance/stg-evm-v2", "2.0.6")
    assert set(STARGATE_EVENTS) == set(STARGATE_OURS)
    assert sorted(STARGATE_OURS.values()) == sorted(TOPICS["stargate_v2"])


@pytest.mark.parametrize("name", sorted(STARGATE_OURS))
def test_stargate_topic_is_the_published_events(name: str) -> None:
    assert "0x" + event_abi_to_log_topic(STARGATE_EVENTS[name]).hex() == STARGATE_OURS[name]


def test_stargate_fields_are_where_the_decoder_reads_them() -> None:
    """The guid the first indexed argument of both pool events; the bus events' fields all data, in the order
    decoded; the stand-in's four events the published ones."""
    from .bridge_watch import stand_ins

    def shape(event: dict) -> tuple[list[str], list[str]]:
        inputs = event["inputs"]
        return [i["name"] for i in inputs if i["indexed"]], [
            f"{i['type']} {i['name']}" for i in inputs if not i["indexed"]
        ]

    assert shape(STARGATE_EVENTS["OFTSent"]) == (
        ["guid", "fromAddress"], ["uint32 dstEid", "uint256 amountSentLD", "uint256 amountReceivedLD"]
    )  # fmt: skip
    assert shape(STARGATE_EVENTS["OFTReceived"]) == (
        ["guid", "toAddress"],
        ["uint32 srcEid", "uint256 amountReceivedLD"],
    )
    assert shape(STARGATE_EVENTS["BusRode"]) == (
        [],
        ["uint32 dstEid", "uint72 ticketId", "uint80 fare", "bytes passenger"],
    )
    assert shape(STARGATE_EVENTS["BusDriven"]) == (
        [], ["uint32 dstEid", "uint72 startTicketId", "uint8 numPassengers", "bytes32 guid"]
    )  # fmt: skip
    built = stand_ins("LocalStargate.sol")
    ours = {e["name"]: e for name in ("LocalStargatePool", "LocalTokenMessaging") for e in built[name][0]
            if e["type"] == "event"}  # fmt: skip
    for name, published in STARGATE_EVENTS.items():
        assert shape(ours[name]) == shape(published)
