// SPDX-License-Identifier: MIT
// Test-only: a two-token constant-product pool (fee on the input) registered with the published Balancer V2
// Vault (TWO_TOKEN specialization), so that the Vault's swap and batchSwap run against it as against any of
// Balancer's pools: the Vault calls onSwap (IMinimalSwapInfoPool) and moves the tokens. Written for
// tests/agent/balancer_fixture.py; never deployed anywhere else.
pragma solidity ^0.7.0;
pragma experimental ABIEncoderV2;

interface IVaultRegistry {
    function registerPool(uint8 specialization) external returns (bytes32);

    function registerTokens(bytes32 poolId, address[] calldata tokens, address[] calldata assetManagers) external;
}

contract BalancerTestPool {
    // IPoolSwapStructs.SwapRequest, field for field.
    struct SwapRequest {
        uint8 kind;
        address tokenIn;
        address tokenOut;
        uint256 amount;
        bytes32 poolId;
        uint256 lastChangeBlock;
        address from;
        address to;
        bytes userData;
    }

    address public immutable vault;
    bytes32 public immutable poolId;
    uint256 public immutable feeBps; // charged on the input, out of 10,000

    constructor(address vault_, address tokenA, address tokenB, uint256 feeBps_) {
        vault = vault_;
        feeBps = feeBps_;
        bytes32 id = IVaultRegistry(vault_).registerPool(2); // TWO_TOKEN: tokens sorted
        address[] memory tokens = new address[](2);
        (tokens[0], tokens[1]) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
        IVaultRegistry(vault_).registerTokens(id, tokens, new address[](2));
        poolId = id;
    }

    // The joiner says how much of each token it adds (userData: uint256[2]); no protocol fees are due.
    function onJoinPool(bytes32, address, address, uint256[] memory, uint256, uint256, bytes memory userData)
        external
        view
        returns (uint256[] memory amountsIn, uint256[] memory dueProtocolFeeAmounts)
    {
        require(msg.sender == vault, "only the vault");
        amountsIn = abi.decode(userData, (uint256[]));
        dueProtocolFeeAmounts = new uint256[](2);
    }

    function onExitPool(bytes32, address, address, uint256[] memory, uint256, uint256, bytes memory)
        external
        pure
        returns (uint256[] memory, uint256[] memory)
    {
        revert("no exits");
    }

    function onSwap(SwapRequest memory request, uint256 balanceIn, uint256 balanceOut)
        external
        view
        returns (uint256)
    {
        require(msg.sender == vault, "only the vault");
        if (request.kind == 0) {
            // GIVEN_IN: what `amount` in pays out.
            uint256 net = (request.amount * (10000 - feeBps)) / 10000;
            return (balanceOut * net) / (balanceIn + net);
        }
        // GIVEN_OUT: what must come in for `amount` out (rounded up).
        uint256 before = (balanceIn * request.amount) / (balanceOut - request.amount) + 1;
        return (before * 10000) / (10000 - feeBps) + 1;
    }
}
