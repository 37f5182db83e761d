// SPDX-License-Identifier: MIT
// Circle CCTP V1 for the tests, without attesters: the events of its MessageTransmitter and TokenMessenger
// with the same signatures (circlefin/evm-cctp-contracts src/MessageTransmitter.sol, src/TokenMessenger.sol)
// and its message formats (src/messages/Message.sol, src/messages/BurnMessage.sol), so the bridge monitor
// reads real transactions on two anvil chains. The test's relayer carries each MessageSent's message to
// the destination's receiveMessage (Circle's attestation is what the relayer waits for on a real chain).
// The messenger holds what it "burns" and pays what it "mints" from a balance the test gives it.
pragma solidity 0.8.30;

interface IERC20Like {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

interface IMessageHandler {
    function handleReceiveMessage(uint32 sourceDomain, bytes32 sender, bytes calldata messageBody)
        external
        returns (bool);
}

contract LocalMessageTransmitter {
    uint32 public immutable localDomain;
    uint64 public nextAvailableNonce;
    mapping(bytes32 => uint256) public usedNonces;

    event MessageSent(bytes message);
    event MessageReceived(
        address indexed caller, uint32 sourceDomain, uint64 indexed nonce, bytes32 sender, bytes messageBody
    );

    constructor(uint32 domain) {
        localDomain = domain;
    }

    function sendMessage(uint32 destinationDomain, bytes32 recipient, bytes calldata messageBody)
        external
        returns (uint64 nonce)
    {
        nonce = nextAvailableNonce++;
        // version, sourceDomain, destinationDomain, nonce, sender, recipient, destinationCaller, body
        emit MessageSent(
            abi.encodePacked(
                uint32(0), localDomain, destinationDomain, nonce, bytes32(uint256(uint160(msg.sender))), recipient,
                bytes32(0), messageBody
            )
        );
    }

    function receiveMessage(bytes calldata message) external returns (bool) {
        require(uint32(bytes4(message[8:12])) == localDomain, "Invalid destination domain");
        uint32 sourceDomain = uint32(bytes4(message[4:8]));
        uint64 nonce = uint64(bytes8(message[12:20]));
        bytes32 key = keccak256(abi.encodePacked(sourceDomain, nonce));
        require(usedNonces[key] == 0, "Nonce already used");
        usedNonces[key] = 1;
        bytes32 sender = bytes32(message[20:52]);
        address recipient = address(uint160(uint256(bytes32(message[52:84]))));
        bytes calldata body = message[116:];
        require(IMessageHandler(recipient).handleReceiveMessage(sourceDomain, sender, body), "handler");
        emit MessageReceived(msg.sender, sourceDomain, nonce, sender, body);
        return true;
    }
}

contract LocalTokenMessenger {
    LocalMessageTransmitter public immutable localMessageTransmitter;

    event DepositForBurn(
        uint64 indexed nonce,
        address indexed burnToken,
        uint256 amount,
        address indexed depositor,
        bytes32 mintRecipient,
        uint32 destinationDomain,
        bytes32 destinationTokenMessenger,
        bytes32 destinationCaller
    );
    event MintAndWithdraw(address indexed mintRecipient, uint256 amount, address indexed mintToken);

    constructor(LocalMessageTransmitter transmitter) {
        localMessageTransmitter = transmitter;
    }

    // The remote messenger and the local token are at the same addresses on both test chains (same
    // deployer, same nonces).
    function depositForBurn(uint256 amount, uint32 destinationDomain, bytes32 mintRecipient, address burnToken)
        external
        returns (uint64 nonce)
    {
        require(IERC20Like(burnToken).transferFrom(msg.sender, address(this), amount), "transfer");
        bytes32 remote = bytes32(uint256(uint160(address(this))));
        // BurnMessage: version, burnToken, mintRecipient, amount, messageSender
        bytes memory body = abi.encodePacked(
            uint32(0), bytes32(uint256(uint160(burnToken))), mintRecipient, amount, bytes32(uint256(uint160(msg.sender)))
        );
        nonce = localMessageTransmitter.sendMessage(destinationDomain, remote, body);
        emit DepositForBurn(nonce, burnToken, amount, msg.sender, mintRecipient, destinationDomain, remote, bytes32(0));
    }

    function handleReceiveMessage(uint32, bytes32 sender, bytes calldata body) external returns (bool) {
        require(msg.sender == address(localMessageTransmitter), "Invalid message transmitter");
        require(sender == bytes32(uint256(uint160(address(this)))), "Remote TokenMessenger unsupported");
        address token = address(uint160(uint256(bytes32(body[4:36]))));
        address recipient = address(uint160(uint256(bytes32(body[36:68]))));
        uint256 amount = uint256(bytes32(body[68:100]));
        require(IERC20Like(token).transfer(recipient, amount), "mint");
        emit MintAndWithdraw(recipient, amount, token);
        return true;
    }
}
