// SPDX-License-Identifier: MIT
// Test-only helpers to run the published PancakeSwap V3 pool (@pancakeswap/v3-core) on anvil. The npm
// package ships PancakeV3Factory and PancakeV3Pool but neither PancakeV3PoolDeployer nor any periphery,
// so these stand in for them. Written for tests/agent/test_pancake_v3.py; never deployed anywhere else.
pragma solidity 0.8.30;

interface IERC20Transfer {
    function transfer(address to, uint256 amount) external returns (bool);
}

interface IPancakeV3PoolActions {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function mint(address recipient, int24 tickLower, int24 tickUpper, uint128 amount, bytes calldata data)
        external
        returns (uint256 amount0, uint256 amount1);
    function burn(int24 tickLower, int24 tickUpper, uint128 amount) external returns (uint256, uint256);
    function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96, bytes calldata data)
        external
        returns (int256 amount0, int256 amount1);
}

/// What PancakeV3Factory.createPool calls: the pool's constructor reads its immutables back from
/// msg.sender's parameters(), so the contract that creates the pool must answer it while it does.
contract TestPoolDeployer {
    struct Parameters {
        address factory;
        address token0;
        address token1;
        uint24 fee;
        int24 tickSpacing;
    }

    Parameters public parameters;
    bytes private poolCode;

    /// The pool's creation bytecode from the npm artifact, set once before the first pool.
    function setPoolCode(bytes calldata code) external {
        require(poolCode.length == 0, "code already set");
        poolCode = code;
    }

    function deploy(address factory, address token0, address token1, uint24 fee, int24 tickSpacing)
        external
        returns (address pool)
    {
        parameters = Parameters(factory, token0, token1, fee, tickSpacing);
        bytes memory code = poolCode;
        bytes32 salt = keccak256(abi.encode(token0, token1, fee));
        assembly {
            pool := create2(0, add(code, 32), mload(code), salt)
        }
        require(pool != address(0), "pool creation failed");
        delete parameters;
    }
}

/// Mints, burns and swaps against any pool, paying what the pool asks from this contract's balance.
/// The callbacks do not check their caller: in a test nothing else holds tokens here.
contract TestTrader {
    function mint(address pool, int24 tickLower, int24 tickUpper, uint128 amount) external {
        IPancakeV3PoolActions(pool).mint(address(this), tickLower, tickUpper, amount, "");
    }

    function burn(address pool, int24 tickLower, int24 tickUpper, uint128 amount) external {
        IPancakeV3PoolActions(pool).burn(tickLower, tickUpper, amount);
    }

    function swap(address pool, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96) external {
        IPancakeV3PoolActions(pool).swap(address(this), zeroForOne, amountSpecified, sqrtPriceLimitX96, "");
    }

    function pancakeV3MintCallback(uint256 amount0Owed, uint256 amount1Owed, bytes calldata) external {
        _pay(amount0Owed, amount1Owed);
    }

    function pancakeV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata) external {
        _pay(amount0Delta > 0 ? uint256(amount0Delta) : 0, amount1Delta > 0 ? uint256(amount1Delta) : 0);
    }

    function _pay(uint256 amount0, uint256 amount1) private {
        IPancakeV3PoolActions pool = IPancakeV3PoolActions(msg.sender);
        if (amount0 > 0) require(IERC20Transfer(pool.token0()).transfer(msg.sender, amount0), "pay token0");
        if (amount1 > 0) require(IERC20Transfer(pool.token1()).transfer(msg.sender, amount1), "pay token1");
    }
}
