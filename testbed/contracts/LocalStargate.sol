// SPDX-License-Identifier: MIT
// A Stargate V2 pool for the tests, without LayerZero: its send emits IOFT's OFTSent and its receive (called
// by the test's relayer in the place of the LayerZero endpoint) IOFT's OFTReceived, with the signatures of
// the StargatePool ABI published in npm @stargatefinance/stg-evm-v2@2.0.6, so the bridge monitor reads real
// transactions on two anvil chains. `rideBus` emits a bus passenger's OFTSent (a zero guid), as
// StargateBase does when the bus's guid is not known yet; with a TokenMessaging set (`setMessaging`) it
// first rides that TokenMessaging's bus, which emits BusRode (the passenger's ticket) as the package's
// TokenMessaging does, and the bus driven emits BusDriven (its tickets and guid). On the destination the
// relayer hands the bus to the TokenMessaging's `receiveBus`, which pays each passenger from its asset's pool
// (`receiveTokenBus`: OFTReceived under the bus's guid, seat by seat).
pragma solidity 0.8.30;

interface IERC20Like {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract LocalStargatePool {
    address public immutable token;
    uint32 public immutable localEid;
    uint16 public immutable assetId;
    LocalTokenMessaging public messaging;
    uint64 public nonce;
    mapping(bytes32 => bool) public received;

    event OFTSent(
        bytes32 indexed guid, uint32 dstEid, address indexed fromAddress, uint256 amountSentLD, uint256 amountReceivedLD
    );
    event OFTReceived(bytes32 indexed guid, uint32 srcEid, address indexed toAddress, uint256 amountReceivedLD);

    constructor(address poolToken, uint32 eid, uint16 asset) {
        token = poolToken;
        localEid = eid;
        assetId = asset;
    }

    function setMessaging(LocalTokenMessaging tokenMessaging) external {
        messaging = tokenMessaging;
    }

    function send(uint32 dstEid, address to, uint256 amount, uint256 fee) external returns (bytes32 guid) {
        require(IERC20Like(token).transferFrom(msg.sender, address(this), amount), "transfer");
        guid = keccak256(abi.encodePacked(++nonce, localEid, address(this), dstEid, to));
        emit OFTSent(guid, dstEid, msg.sender, amount, amount - fee);
    }

    function rideBus(uint32 dstEid, uint256 amount) external {
        require(IERC20Like(token).transferFrom(msg.sender, address(this), amount), "transfer");
        if (address(messaging) != address(0)) {
            // BusPassenger as the package's BusCodec packs it: assetId, receiver, amountSD (6 decimals here:
            // the same as the token's), nativeDrop.
            messaging.rideBus(dstEid, abi.encodePacked(assetId, bytes32(uint256(uint160(msg.sender))), uint64(amount), false));
        }
        emit OFTSent(bytes32(0), dstEid, msg.sender, amount, amount);
    }

    function receiveToken(bytes32 guid, uint32 srcEid, address to, uint256 amount) external {
        require(!received[guid], "received");
        received[guid] = true;
        require(IERC20Like(token).transfer(to, amount), "transfer");
        emit OFTReceived(guid, srcEid, to, amount);
    }

    function receiveTokenBus(bytes32 guid, uint32 srcEid, address to, uint256 amount) external {
        require(msg.sender == address(messaging), "only messaging");
        require(IERC20Like(token).transfer(to, amount), "transfer");
        emit OFTReceived(guid, srcEid, to, amount);
    }
}

contract LocalTokenMessaging {
    uint32 public immutable localEid;
    mapping(uint16 => LocalStargatePool) public pools; // assetId → pool
    mapping(uint32 => uint72) public nextTicketId; // dstEid → the bus's first ticket not driven
    mapping(uint32 => uint72) public queued; // dstEid → passengers waiting
    uint64 public nonce;

    event BusRode(uint32 dstEid, uint72 ticketId, uint80 fare, bytes passenger);
    event BusDriven(uint32 dstEid, uint72 startTicketId, uint8 numPassengers, bytes32 guid);

    constructor(uint32 eid) {
        localEid = eid;
    }

    function setPool(uint16 assetId, LocalStargatePool pool) external {
        pools[assetId] = pool;
    }

    function rideBus(uint32 dstEid, bytes calldata passenger) external returns (uint72 ticketId) {
        require(msg.sender == address(pools[uint16(bytes2(passenger[0:2]))]), "only the asset's pool");
        ticketId = nextTicketId[dstEid] + queued[dstEid]++;
        emit BusRode(dstEid, ticketId, 0, passenger);
    }

    // Anybody may drive the bus with all its passengers.
    function driveBus(uint32 dstEid) external returns (bytes32 guid) {
        uint72 count = queued[dstEid];
        require(count > 0, "empty bus");
        guid = keccak256(abi.encodePacked(++nonce, localEid, address(this), dstEid));
        emit BusDriven(dstEid, nextTicketId[dstEid], uint8(count), guid);
        nextTicketId[dstEid] += count;
        queued[dstEid] = 0;
    }

    // The LayerZero endpoint's delivery of a bus (the relayer's call): its passengers' packed bytes in seat order.
    function receiveBus(uint32 srcEid, bytes32 guid, bytes calldata passengers) external {
        for (uint256 at = 0; at < passengers.length; at += 43) {
            bytes calldata p = passengers[at:at + 43];
            address receiver = address(uint160(uint256(bytes32(p[2:34]))));
            pools[uint16(bytes2(p[0:2]))].receiveTokenBus(guid, srcEid, receiver, uint64(bytes8(p[34:42])));
        }
    }
}
