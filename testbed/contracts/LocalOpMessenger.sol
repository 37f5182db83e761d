// SPDX-License-Identifier: MIT
// The OP Stack's canonical bridge for the tests, without a rollup: a CrossDomainMessenger and a
// StandardBridge with the events of npm @eth-optimism/contracts-bedrock@0.17.3
// (src/universal/CrossDomainMessenger.sol, src/universal/StandardBridge.sol) in the same order, the same
// versioned nonce (Encoding.encodeVersionedNonce: version 1 in the top 16 bits) and the same message hash
// (Hashing.hashCrossDomainMessageV1: keccak256 of relayMessage's calldata), so the bridge monitor reads real
// transactions on two anvil chains. The test's relayer plays the OptimismPortal and the sequencer (a
// deposit) or the prover and finalizer after the challenge period (a withdrawal): it calls the other end's
// relayMessage with the message's value. As in the real messenger a relay whose call fails emits
// FailedRelayedMessage and keeps the value, and anybody may replay it (no value) until it succeeds. The
// bridge pays out of a balance the test gives it where the real one releases what it locked or mints.
pragma solidity 0.8.30;

interface IERC20Like {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract LocalCrossDomainMessenger {
    uint16 public constant MESSAGE_VERSION = 1;
    address internal constant DEFAULT_L2_SENDER = 0x000000000000000000000000000000000000dEaD;
    // The account standing in for the other messenger's system path (the portal, the L2's deposit
    // transactions): only it relays a message the first time, with the message's value.
    address public immutable relayer;
    uint240 internal msgNonce;
    address internal xDomainMsgSender = DEFAULT_L2_SENDER;
    mapping(bytes32 => bool) public successfulMessages;
    mapping(bytes32 => bool) public failedMessages;

    event SentMessage(address indexed target, address sender, bytes message, uint256 messageNonce, uint256 gasLimit);
    event SentMessageExtension1(address indexed sender, uint256 value);
    event RelayedMessage(bytes32 indexed msgHash);
    event FailedRelayedMessage(bytes32 indexed msgHash);

    constructor() {
        relayer = msg.sender;
    }

    function messageNonce() public view returns (uint256 nonce) {
        uint240 n = msgNonce;
        uint16 version = MESSAGE_VERSION;
        assembly {
            nonce := or(shl(240, version), n)
        }
    }

    function sendMessage(address _target, bytes calldata _message, uint32 _minGasLimit) external payable {
        emit SentMessage(_target, msg.sender, _message, messageNonce(), _minGasLimit);
        emit SentMessageExtension1(msg.sender, msg.value);
        unchecked {
            ++msgNonce;
        }
    }

    function relayMessage(
        uint256 _nonce,
        address _sender,
        address _target,
        uint256 _value,
        uint256 _minGasLimit,
        bytes calldata _message
    ) external payable {
        require(_nonce >> 240 < 2, "CrossDomainMessenger: only version 0 or 1 messages are supported at this time");
        bytes32 versionedHash = keccak256(
            abi.encodeWithSignature(
                "relayMessage(uint256,address,address,uint256,uint256,bytes)",
                _nonce,
                _sender,
                _target,
                _value,
                _minGasLimit,
                _message
            )
        );
        if (msg.sender == relayer && !failedMessages[versionedHash]) {
            require(msg.value == _value, "value");
        } else {
            require(msg.value == 0, "CrossDomainMessenger: value must be zero unless message is from a system address");
            require(failedMessages[versionedHash], "CrossDomainMessenger: message cannot be replayed");
        }
        require(successfulMessages[versionedHash] == false, "CrossDomainMessenger: message has already been relayed");
        xDomainMsgSender = _sender;
        (bool success,) = _target.call{value: _value, gas: gasleft() - 40_000}(_message);
        xDomainMsgSender = DEFAULT_L2_SENDER;
        if (success) {
            successfulMessages[versionedHash] = true;
            emit RelayedMessage(versionedHash);
        } else {
            failedMessages[versionedHash] = true;
            emit FailedRelayedMessage(versionedHash);
        }
    }

    function xDomainMessageSender() external view returns (address) {
        require(xDomainMsgSender != DEFAULT_L2_SENDER, "CrossDomainMessenger: xDomainMessageSender is not set");
        return xDomainMsgSender;
    }
}

// The bridge on the other chain is at this one's address (the same deployer and nonces on both test chains).
contract LocalStandardBridge {
    LocalCrossDomainMessenger public immutable messenger;

    event ETHBridgeInitiated(address indexed from, address indexed to, uint256 amount, bytes extraData);
    event ETHBridgeFinalized(address indexed from, address indexed to, uint256 amount, bytes extraData);
    event ERC20BridgeInitiated(
        address indexed localToken,
        address indexed remoteToken,
        address indexed from,
        address to,
        uint256 amount,
        bytes extraData
    );
    event ERC20BridgeFinalized(
        address indexed localToken,
        address indexed remoteToken,
        address indexed from,
        address to,
        uint256 amount,
        bytes extraData
    );

    constructor(LocalCrossDomainMessenger _messenger) {
        messenger = _messenger;
    }

    modifier onlyOtherBridge() {
        require(
            msg.sender == address(messenger) && messenger.xDomainMessageSender() == address(this),
            "StandardBridge: function can only be called from the other bridge"
        );
        _;
    }

    function bridgeETHTo(address _to, uint32 _minGasLimit, bytes calldata _extraData) external payable {
        emit ETHBridgeInitiated(msg.sender, _to, msg.value, _extraData);
        messenger.sendMessage{value: msg.value}(
            address(this),
            abi.encodeWithSelector(this.finalizeBridgeETH.selector, msg.sender, _to, msg.value, _extraData),
            _minGasLimit
        );
    }

    function bridgeERC20To(
        address _localToken,
        address _remoteToken,
        address _to,
        uint256 _amount,
        uint32 _minGasLimit,
        bytes calldata _extraData
    ) external {
        require(IERC20Like(_localToken).transferFrom(msg.sender, address(this), _amount), "transfer");
        emit ERC20BridgeInitiated(_localToken, _remoteToken, msg.sender, _to, _amount, _extraData);
        messenger.sendMessage(
            address(this),
            abi.encodeWithSelector(
                this.finalizeBridgeERC20.selector, _remoteToken, _localToken, msg.sender, _to, _amount, _extraData
            ),
            _minGasLimit
        );
    }

    function finalizeBridgeETH(address _from, address _to, uint256 _amount, bytes calldata _extraData)
        external
        payable
        onlyOtherBridge
    {
        require(msg.value == _amount, "StandardBridge: amount sent does not match amount required");
        emit ETHBridgeFinalized(_from, _to, _amount, _extraData);
        (bool success,) = _to.call{value: _amount}("");
        require(success, "StandardBridge: ETH transfer failed");
    }

    function finalizeBridgeERC20(
        address _localToken,
        address _remoteToken,
        address _from,
        address _to,
        uint256 _amount,
        bytes calldata _extraData
    ) external onlyOtherBridge {
        require(IERC20Like(_localToken).transfer(_to, _amount), "StandardBridge: balance");
        emit ERC20BridgeFinalized(_localToken, _remoteToken, _from, _to, _amount, _extraData);
    }
}
