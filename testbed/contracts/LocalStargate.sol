// SPDX-License-Identifier: MIT
// A Stargate V2 pool for the tests, without LayerZero: its send emits IOFT's OFTSent and its receive (called
// by the test's relayer in the place of the LayerZero endpoint) IOFT's OFTReceived, with the signatures of
// the StargatePool ABI published in npm @stargatefinance/stg-evm-v2@2.0.6, so the bridge monitor reads real
// transactions on two anvil chains. `rideBus` emits a bus passenger's OFTSent (a zero guid), as
// StargateBase does when the bus's guid is not known yet.
pragma solidity 0.8.30;

interface IERC20Like {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract LocalStargatePool {
    address public immutable token;
    uint32 public immutable localEid;
    uint64 public nonce;
    mapping(bytes32 => bool) public received;

    event OFTSent(
        bytes32 indexed guid, uint32 dstEid, address indexed fromAddress, uint256 amountSentLD, uint256 amountReceivedLD
    );
    event OFTReceived(bytes32 indexed guid, uint32 srcEid, address indexed toAddress, uint256 amountReceivedLD);

    constructor(address poolToken, uint32 eid) {
        token = poolToken;
        localEid = eid;
    }

    function send(uint32 dstEid, address to, uint256 amount, uint256 fee) external returns (bytes32 guid) {
        require(IERC20Like(token).transferFrom(msg.sender, address(this), amount), "transfer");
        guid = keccak256(abi.encodePacked(++nonce, localEid, address(this), dstEid, to));
        emit OFTSent(guid, dstEid, msg.sender, amount, amount - fee);
    }

    function rideBus(uint32 dstEid, uint256 amount) external {
        require(IERC20Like(token).transferFrom(msg.sender, address(this), amount), "transfer");
        emit OFTSent(bytes32(0), dstEid, msg.sender, amount, amount);
    }

    function receiveToken(bytes32 guid, uint32 srcEid, address to, uint256 amount) external {
        require(!received[guid], "received");
        received[guid] = true;
        require(IERC20Like(token).transfer(to, amount), "transfer");
        emit OFTReceived(guid, srcEid, to, amount);
    }
}
