// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

// The agent's atomic arbitrage: trades the contract's own inventory once around a cycle of
// Uniswap V2 pairs and V3 pools and reverts unless it ends holding at least what it started with
// plus the minimum profit (and the builder payment, when that is paid out of the profit).
// It takes no one else's transaction and no victim parameters: only a cycle over pools the owner
// names, funded by the contract's balance.

interface IERC20 {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
}

interface IUniswapV2Pair {
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface IUniswapV3Pool {
    function swap(
        address recipient,
        bool zeroForOne,
        int256 amountSpecified,
        uint160 sqrtPriceLimitX96,
        bytes calldata data
    ) external returns (int256 amount0, int256 amount1);
}

interface IWrappedNative {
    function withdraw(uint256 amount) external;
}

contract ArbExecutor {
    struct Hop {
        address pool;
        address tokenIn;
        address tokenOut;
        bool isV3;
        // V2 only: out = in·(feeDenominator − fee)·R_out / (R_in·feeDenominator + in·(feeDenominator − fee)),
        // the fork's own formula (amm/forks.yml). V3 pools know their fee.
        uint32 fee;
        uint32 feeDenominator;
    }

    // TickMath.MIN_SQRT_RATIO + 1 and MAX_SQRT_RATIO - 1: no price limit; the profit check decides.
    uint160 internal constant MIN_SQRT_RATIO_PLUS_ONE = 4295128740;
    uint160 internal constant MAX_SQRT_RATIO_MINUS_ONE = 1461446703485210103287273052203988822378723970341;

    address public immutable owner;
    // The chain's wrapped native token: a builder payment out of a cycle in it is unwrapped from the
    // profit; any other cycle pays the builder from the contract's native balance.
    address public immutable wrappedNative;

    // The V3 pool being called and the token it is owed: only that pool may call back, and only
    // during its own swap.
    address transient expectedPool;
    address transient owedToken;

    event Executed(address indexed token, uint256 amountIn, uint256 profit, uint256 builderPayment);

    error NotOwner();
    error NotACycle();
    error Expired(uint256 blockNumber, uint256 maxBlock);
    error InsufficientProfit(uint256 balanceBefore, uint256 balanceAfter, uint256 required);
    error UnexpectedCallback(address caller);
    error TransferFailed();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    constructor(address wrappedNative_) {
        owner = msg.sender;
        wrappedNative = wrappedNative_;
    }

    receive() external payable {}

    // Returns the profit kept after the builder payment, so an eth_call shows what a run would earn.
    function execute(
        Hop[] calldata hops,
        uint256 amountIn,
        uint256 minProfit,
        uint256 builderPayment,
        uint256 maxBlock
    ) external onlyOwner returns (uint256 profit) {
        if (block.number > maxBlock) revert Expired(block.number, maxBlock);
        uint256 count = hops.length;
        if (count == 0 || hops[0].tokenIn != hops[count - 1].tokenOut) revert NotACycle();
        address token = hops[0].tokenIn;
        uint256 balanceBefore = IERC20(token).balanceOf(address(this));

        uint256 amount = amountIn;
        // Whether the previous hop already delivered `amount` into this hop's V2 pair.
        bool delivered = false;
        for (uint256 i = 0; i < count; ++i) {
            Hop calldata hop = hops[i];
            if (i > 0 && hop.tokenIn != hops[i - 1].tokenOut) revert NotACycle();
            // A V2 pair is paid before its swap, so the hop before it sends its output straight there.
            address recipient = (i + 1 < count && !hops[i + 1].isV3) ? hops[i + 1].pool : address(this);
            if (hop.isV3) {
                amount = _swapV3(hop, amount, recipient);
            } else {
                if (!delivered) _transfer(hop.tokenIn, hop.pool, amount);
                amount = _swapV2(hop, amount, recipient);
            }
            delivered = recipient != address(this);
        }

        uint256 balanceAfter = IERC20(token).balanceOf(address(this));
        bool paidFromProfit = builderPayment > 0 && token == wrappedNative;
        uint256 required = balanceBefore + minProfit + (paidFromProfit ? builderPayment : 0);
        if (balanceAfter < required) revert InsufficientProfit(balanceBefore, balanceAfter, required);
        if (builderPayment > 0) {
            if (paidFromProfit) IWrappedNative(token).withdraw(builderPayment);
            (bool ok, ) = block.coinbase.call{value: builderPayment}("");
            if (!ok) revert TransferFailed();
        }
        profit = balanceAfter - balanceBefore - (paidFromProfit ? builderPayment : 0);
        emit Executed(token, amountIn, profit, builderPayment);
    }

    function _swapV2(Hop calldata hop, uint256 amountIn, address recipient) internal returns (uint256 amountOut) {
        (uint256 reserve0, uint256 reserve1, ) = IUniswapV2Pair(hop.pool).getReserves();
        bool zeroForOne = hop.tokenIn < hop.tokenOut;
        (uint256 reserveIn, uint256 reserveOut) = zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0);
        uint256 withFee = amountIn * (hop.feeDenominator - hop.fee);
        amountOut = (withFee * reserveOut) / (reserveIn * hop.feeDenominator + withFee);
        (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), amountOut) : (amountOut, uint256(0));
        IUniswapV2Pair(hop.pool).swap(out0, out1, recipient, "");
    }

    function _swapV3(Hop calldata hop, uint256 amountIn, address recipient) internal returns (uint256 amountOut) {
        bool zeroForOne = hop.tokenIn < hop.tokenOut;
        expectedPool = hop.pool;
        owedToken = hop.tokenIn;
        (int256 amount0, int256 amount1) = IUniswapV3Pool(hop.pool).swap(
            recipient,
            zeroForOne,
            int256(amountIn),
            zeroForOne ? MIN_SQRT_RATIO_PLUS_ONE : MAX_SQRT_RATIO_MINUS_ONE,
            ""
        );
        expectedPool = address(0);
        amountOut = uint256(-(zeroForOne ? amount1 : amount0));
    }

    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata) external {
        _paySwappingPool(amount0Delta, amount1Delta);
    }

    // PancakeSwap V3 pools swap exactly like Uniswap V3's but call back under their own name.
    function pancakeV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata) external {
        _paySwappingPool(amount0Delta, amount1Delta);
    }

    function _paySwappingPool(int256 amount0Delta, int256 amount1Delta) internal {
        if (msg.sender != expectedPool) revert UnexpectedCallback(msg.sender);
        // Only the pool in the middle of our swap gets here; pay exactly what it says it is owed.
        uint256 owed = uint256(amount0Delta > 0 ? amount0Delta : amount1Delta);
        _transfer(owedToken, msg.sender, owed);
    }

    function withdraw(address token, address to, uint256 amount) external onlyOwner {
        _transfer(token, to, amount);
    }

    function withdrawNative(address payable to, uint256 amount) external onlyOwner {
        (bool ok, ) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // Tolerates tokens that return nothing from transfer (USDT-style), refuses those that return false.
    function _transfer(address token, address to, uint256 amount) internal {
        (bool ok, bytes memory data) = token.call(abi.encodeCall(IERC20.transfer, (to, amount)));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed();
    }
}
