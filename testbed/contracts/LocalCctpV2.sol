// SPDX-License-Identifier: MIT
// Circle CCTP V2 for the tests, without attesters: the events of its MessageTransmitterV2 and TokenMessengerV2
// with the same signatures (circlefin/evm-cctp-contracts src/v2/MessageTransmitterV2.sol,
// src/v2/TokenMessengerV2.sol, src/v2/BaseTokenMessenger.sol) and its message formats
// (src/messages/v2/MessageV2.sol, BurnMessageV2.sol), written here for the bridge monitor's tests. The source
// emits its message with a zero nonce, finalityThresholdExecuted, feeExecuted and expirationBlock; the test's
// relayer plays the attester: it fills them and calls the destination's receiveMessage (the attestation
// argument is taken and not checked). The messenger holds what it "burns" and pays what it "mints" from a
// balance the test gives it; the fee stays with it (Circle's goes to its feeRecipient).
pragma solidity 0.8.30;

interface IERC20V2Like {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

interface IMessageHandlerV2 {
    function handleReceiveFinalizedMessage(uint32 sourceDomain, bytes32 sender, uint32 finality, bytes calldata body)
        external
        returns (bool);
    function handleReceiveUnfinalizedMessage(uint32 sourceDomain, bytes32 sender, uint32 finality, bytes calldata body)
        external
        returns (bool);
}

contract LocalMessageTransmitterV2 {
    uint32 public constant VERSION = 1;
    uint32 public constant FINALIZED = 2000;
    uint32 public immutable localDomain;
    mapping(bytes32 => uint256) public usedNonces;

    event MessageSent(bytes message);
    event MessageReceived(
        address indexed caller,
        uint32 sourceDomain,
        bytes32 indexed nonce,
        bytes32 sender,
        uint32 indexed finalityThresholdExecuted,
        bytes messageBody
    );

    constructor(uint32 domain) {
        localDomain = domain;
    }

    function sendMessage(
        uint32 destinationDomain,
        bytes32 recipient,
        bytes32 destinationCaller,
        uint32 minFinalityThreshold,
        bytes calldata messageBody
    ) external {
        emit MessageSent(
            abi.encodePacked(
                VERSION, localDomain, destinationDomain, bytes32(0), bytes32(uint256(uint160(msg.sender))), recipient,
                destinationCaller, minFinalityThreshold, uint32(0), messageBody
            )
        );
    }

    function receiveMessage(bytes calldata message, bytes calldata) external returns (bool) {
        require(uint32(bytes4(message[8:12])) == localDomain, "Invalid destination domain");
        require(uint32(bytes4(message[0:4])) == VERSION, "Invalid message version");
        bytes32 nonce = bytes32(message[12:44]);
        require(usedNonces[nonce] == 0, "Nonce already used");
        usedNonces[nonce] = 1;
        uint32 sourceDomain = uint32(bytes4(message[4:8]));
        bytes32 sender = bytes32(message[44:76]);
        address recipient = address(uint160(uint256(bytes32(message[76:108]))));
        uint32 executed = uint32(bytes4(message[144:148]));
        bytes calldata body = message[148:];
        if (executed < FINALIZED) {
            require(
                IMessageHandlerV2(recipient).handleReceiveUnfinalizedMessage(sourceDomain, sender, executed, body),
                "handleReceiveUnfinalizedMessage() failed"
            );
        } else {
            require(
                IMessageHandlerV2(recipient).handleReceiveFinalizedMessage(sourceDomain, sender, executed, body),
                "handleReceiveFinalizedMessage() failed"
            );
        }
        emit MessageReceived(msg.sender, sourceDomain, nonce, sender, executed, body);
        return true;
    }
}

contract LocalTokenMessengerV2 is IMessageHandlerV2 {
    uint32 public constant BODY_VERSION = 1;
    LocalMessageTransmitterV2 public immutable localMessageTransmitter;

    event DepositForBurn(
        address indexed burnToken,
        uint256 amount,
        address indexed depositor,
        bytes32 mintRecipient,
        uint32 destinationDomain,
        bytes32 destinationTokenMessenger,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 indexed minFinalityThreshold,
        bytes hookData
    );
    event MintAndWithdraw(address indexed mintRecipient, uint256 amount, address indexed mintToken, uint256 feeCollected);

    constructor(LocalMessageTransmitterV2 transmitter) {
        localMessageTransmitter = transmitter;
    }

    // The remote messenger and the local token are at the same addresses on both test chains (same
    // deployer, same nonces).
    function depositForBurn(
        uint256 amount,
        uint32 destinationDomain,
        bytes32 mintRecipient,
        address burnToken,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 minFinalityThreshold
    ) external {
        _deposit(amount, destinationDomain, mintRecipient, burnToken, destinationCaller, maxFee, minFinalityThreshold, "");
    }

    function depositForBurnWithHook(
        uint256 amount,
        uint32 destinationDomain,
        bytes32 mintRecipient,
        address burnToken,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 minFinalityThreshold,
        bytes calldata hookData
    ) external {
        require(hookData.length > 0, "Hook data is empty");
        _deposit(amount, destinationDomain, mintRecipient, burnToken, destinationCaller, maxFee, minFinalityThreshold, hookData);
    }

    function _deposit(
        uint256 amount,
        uint32 destinationDomain,
        bytes32 mintRecipient,
        address burnToken,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 minFinalityThreshold,
        bytes memory hookData
    ) internal {
        require(maxFee < amount, "Max fee must be less than amount");
        require(IERC20V2Like(burnToken).transferFrom(msg.sender, address(this), amount), "transfer");
        bytes32 remote = bytes32(uint256(uint160(address(this))));
        // BurnMessageV2: version, burnToken, mintRecipient, amount, messageSender, maxFee, feeExecuted,
        // expirationBlock, hookData
        bytes memory body = abi.encodePacked(
            BODY_VERSION, bytes32(uint256(uint160(burnToken))), mintRecipient, amount,
            bytes32(uint256(uint160(msg.sender))), maxFee, uint256(0), uint256(0), hookData
        );
        localMessageTransmitter.sendMessage(destinationDomain, remote, destinationCaller, minFinalityThreshold, body);
        emit DepositForBurn(
            burnToken, amount, msg.sender, mintRecipient, destinationDomain, remote, destinationCaller, maxFee,
            minFinalityThreshold, hookData
        );
    }

    function handleReceiveFinalizedMessage(uint32, bytes32 sender, uint32, bytes calldata body)
        external
        returns (bool)
    {
        return _mint(sender, body, 0);
    }

    function handleReceiveUnfinalizedMessage(uint32, bytes32 sender, uint32 finality, bytes calldata body)
        external
        returns (bool)
    {
        require(finality >= 500, "Unsupported finality threshold");
        uint256 expiration = uint256(bytes32(body[196:228]));
        require(expiration == 0 || expiration > block.number, "Message expired and must be re-signed");
        return _mint(sender, body, uint256(bytes32(body[164:196])));
    }

    function _mint(bytes32 sender, bytes calldata body, uint256 fee) internal returns (bool) {
        require(msg.sender == address(localMessageTransmitter), "Invalid message transmitter");
        require(sender == bytes32(uint256(uint160(address(this)))), "Remote TokenMessenger unsupported");
        address token = address(uint160(uint256(bytes32(body[4:36]))));
        address recipient = address(uint160(uint256(bytes32(body[36:68]))));
        uint256 amount = uint256(bytes32(body[68:100]));
        require(fee == 0 || fee < amount, "Fee equals or exceeds amount");
        require(IERC20V2Like(token).transfer(recipient, amount - fee), "mint");
        emit MintAndWithdraw(recipient, amount - fee, token, fee);
        return true;
    }
}

// Another application's receiver of V2 messages through the same transmitter: no mint, not a transfer.
contract LocalV2App is IMessageHandlerV2 {
    function handleReceiveFinalizedMessage(uint32, bytes32, uint32, bytes calldata) external pure returns (bool) {
        return true;
    }

    function handleReceiveUnfinalizedMessage(uint32, bytes32, uint32, bytes calldata) external pure returns (bool) {
        return true;
    }
}
