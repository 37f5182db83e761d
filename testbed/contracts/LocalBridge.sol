// SPDX-License-Identifier: MIT
// Across's SpokePool for the tests, without the HubPool, fees, exclusivity or refunds: its deposit and fill
// events with the real signatures of both generations (the SpokePool ABI published in npm
// @across-protocol/contracts@5.0.27, contracts/interfaces/V3SpokePoolInterface.sol), so the bridge monitor
// reads real transactions on two anvil chains filled by a relayer. Before a chain's SpokePool was upgraded
// to bytes32 addresses (2025) it emitted V3FundsDeposited/FilledV3Relay (address fields, uint32 deposit
// id); since then FundsDeposited/FilledRelay (bytes32 fields, uint256 deposit id). A LocalBridge deployed
// `legacy` emits the former until `upgrade()`. `deposit` and `fillRelay` take bytes32 token and recipient
// arguments as the upgraded SpokePool does (a legacy one narrows them to addresses in its events); the
// deposit id is the SpokePool's deposit counter, and the relayer pays the fill's output amount to the
// recipient.
pragma solidity 0.8.30;

interface IERC20Like {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract LocalBridge {
    enum FillType {
        FastFill,
        ReplacedSlowFill,
        SlowFill
    }

    struct V3RelayData {
        bytes32 depositor;
        bytes32 recipient;
        bytes32 exclusiveRelayer;
        bytes32 inputToken;
        bytes32 outputToken;
        uint256 inputAmount;
        uint256 outputAmount;
        uint256 originChainId;
        uint256 depositId;
        uint32 fillDeadline;
        uint32 exclusivityDeadline;
        bytes message;
    }

    struct V3RelayExecutionEventInfo {
        bytes32 updatedRecipient;
        bytes32 updatedMessageHash;
        uint256 updatedOutputAmount;
        FillType fillType;
    }

    struct LegacyV3RelayExecutionEventInfo {
        address updatedRecipient;
        bytes updatedMessage;
        uint256 updatedOutputAmount;
        FillType fillType;
    }

    bool public legacy;
    uint32 public numberOfDeposits;
    mapping(bytes32 => bool) public filled;

    event FundsDeposited(
        bytes32 inputToken,
        bytes32 outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 indexed destinationChainId,
        uint256 indexed depositId,
        uint32 quoteTimestamp,
        uint32 fillDeadline,
        uint32 exclusivityDeadline,
        bytes32 indexed depositor,
        bytes32 recipient,
        bytes32 exclusiveRelayer,
        bytes message
    );

    event FilledRelay(
        bytes32 inputToken,
        bytes32 outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 repaymentChainId,
        uint256 indexed originChainId,
        uint256 indexed depositId,
        uint32 fillDeadline,
        uint32 exclusivityDeadline,
        bytes32 exclusiveRelayer,
        bytes32 indexed relayer,
        bytes32 depositor,
        bytes32 recipient,
        bytes32 messageHash,
        V3RelayExecutionEventInfo relayExecutionInfo
    );

    event V3FundsDeposited(
        address inputToken,
        address outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 indexed destinationChainId,
        uint32 indexed depositId,
        uint32 quoteTimestamp,
        uint32 fillDeadline,
        uint32 exclusivityDeadline,
        address indexed depositor,
        address recipient,
        address exclusiveRelayer,
        bytes message
    );

    event FilledV3Relay(
        address inputToken,
        address outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 repaymentChainId,
        uint256 indexed originChainId,
        uint32 indexed depositId,
        uint32 fillDeadline,
        uint32 exclusivityDeadline,
        address exclusiveRelayer,
        address indexed relayer,
        address depositor,
        address recipient,
        bytes message,
        LegacyV3RelayExecutionEventInfo relayExecutionInfo
    );

    constructor(bool legacy_) {
        legacy = legacy_;
    }

    function upgrade() external {
        legacy = false;
    }

    // The upgraded SpokePool's deposit arguments, less the depositor (the sender), the exclusive relayer
    // (none), the quote timestamp (the block's) and the message (empty).
    struct Deposit {
        bytes32 recipient;
        bytes32 inputToken;
        bytes32 outputToken;
        uint256 inputAmount;
        uint256 outputAmount;
        uint256 destinationChainId;
        uint32 fillDeadline;
    }

    function deposit(Deposit calldata d) external {
        require(IERC20Like(toAddress(d.inputToken)).transferFrom(msg.sender, address(this), d.inputAmount), "transfer");
        uint32 depositId = numberOfDeposits++;
        if (legacy) {
            emitLegacyDeposit(d, depositId);
        } else {
            emit FundsDeposited(
                d.inputToken, d.outputToken, d.inputAmount, d.outputAmount, d.destinationChainId, depositId,
                uint32(block.timestamp), d.fillDeadline, 0, bytes32(uint256(uint160(msg.sender))), d.recipient, 0, ""
            );
        }
    }

    function emitLegacyDeposit(Deposit calldata d, uint32 depositId) private {
        emit V3FundsDeposited(
            toAddress(d.inputToken), toAddress(d.outputToken), d.inputAmount, d.outputAmount, d.destinationChainId,
            depositId, uint32(block.timestamp), d.fillDeadline, 0, msg.sender, toAddress(d.recipient), address(0), ""
        );
    }

    function fillRelay(V3RelayData calldata relayData, uint256 repaymentChainId, bytes32) external {
        bytes32 key = keccak256(abi.encode(relayData.originChainId, relayData.depositId));
        require(!filled[key], "filled");
        filled[key] = true;
        require(
            IERC20Like(toAddress(relayData.outputToken)).transferFrom(
                msg.sender, toAddress(relayData.recipient), relayData.outputAmount
            ),
            "transfer"
        );
        if (legacy) {
            emitLegacyFill(relayData, repaymentChainId);
        } else {
            emitFill(relayData, repaymentChainId);
        }
    }

    function emitFill(V3RelayData calldata r, uint256 repaymentChainId) private {
        V3RelayExecutionEventInfo memory info =
            V3RelayExecutionEventInfo(r.recipient, 0, r.outputAmount, FillType.FastFill);
        emit FilledRelay(
            r.inputToken, r.outputToken, r.inputAmount, r.outputAmount, repaymentChainId, r.originChainId,
            r.depositId, r.fillDeadline, r.exclusivityDeadline, r.exclusiveRelayer,
            bytes32(uint256(uint160(msg.sender))), r.depositor, r.recipient, 0, info
        );
    }

    function emitLegacyFill(V3RelayData calldata r, uint256 repaymentChainId) private {
        // The addresses and the message in memory first: the legacy encoder would not reach them on the stack.
        address[5] memory a = [
            toAddress(r.inputToken), toAddress(r.outputToken), toAddress(r.exclusiveRelayer), toAddress(r.depositor),
            toAddress(r.recipient)
        ];
        LegacyV3RelayExecutionEventInfo memory info =
            LegacyV3RelayExecutionEventInfo(a[4], r.message, r.outputAmount, FillType.FastFill);
        emit FilledV3Relay(
            a[0], a[1], r.inputAmount, r.outputAmount, repaymentChainId, r.originChainId, uint32(r.depositId),
            r.fillDeadline, r.exclusivityDeadline, a[2], msg.sender, a[3], a[4], info.updatedMessage, info
        );
    }

    function toAddress(bytes32 word) private pure returns (address) {
        require(uint256(word) >> 160 == 0, "not an EVM address");
        return address(uint160(uint256(word)));
    }
}
