// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

// The agent's atomic arbitrage: trades once around a cycle of Uniswap V2 pairs and V3 pools and
// reverts unless it ends holding at least what it started with plus the minimum profit (and the
// builder payment, when that is paid out of the profit). The cycle is funded by the contract's own
// inventory (execute) or by a flashloan taken and repaid, fee included, inside the same call
// (executeFlash): from an Aave V3 pool (flashLoanSimple), the Balancer V2 vault (flashLoan), a
// Uniswap V3 pool (flash), a Uniswap V2 pair (a flash swap repaid in the borrowed token) or an Aave V2
// LendingPool (flashLoan of one asset, mode 0: repaid with its premium). Either way
// the profit is measured on the contract's balance after the loan is repaid. The same loans fund a
// liquidation (an Aave V3 or V2 `liquidationCall` or a Venus vToken's `liquidateBorrow`) whose seized
// collateral is swapped back into the borrowed asset.
// It takes no one else's transaction and no victim parameters: only a cycle over pools the owner
// names.

interface IERC20 {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
    function approve(address spender, uint256 amount) external returns (bool);
}

interface IUniswapV2Pair {
    function token0() external view returns (address);
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

interface IUniswapV3Flash {
    function token0() external view returns (address);
    function flash(address recipient, uint256 amount0, uint256 amount1, bytes calldata data) external;
}

interface IAaveV3Pool {
    function flashLoanSimple(
        address receiverAddress,
        address asset,
        uint256 amount,
        bytes calldata params,
        uint16 referralCode
    ) external;
}

// Aave V2 and its forks (Radiant): `modes` 0 repays the loan in the same call.
interface IAaveV2Pool {
    function flashLoan(
        address receiverAddress,
        address[] calldata assets,
        uint256[] calldata amounts,
        uint256[] calldata modes,
        address onBehalfOf,
        bytes calldata params,
        uint16 referralCode
    ) external;
}

interface IAaveV3Liquidation {
    function liquidationCall(
        address collateralAsset,
        address debtAsset,
        address user,
        uint256 debtToCover,
        bool receiveAToken
    ) external;
}

// A Venus (Compound V2) vToken: both calls answer an error code (0: done) instead of reverting on a refusal.
interface IVToken {
    function balanceOf(address account) external view returns (uint256);
    function liquidateBorrow(address borrower, uint256 repayAmount, address vTokenCollateral) external returns (uint256);
    function redeem(uint256 redeemTokens) external returns (uint256);
}

// Venus' VAIController: VAI debt is liquidated here (it burns and takes the repaid VAI from the caller, which
// must have approved it, and returns an error code instead of reverting on the Comptroller's refusal).
interface IVAIController {
    function liquidateVAI(address borrower, uint256 repayAmount, address vTokenCollateral)
        external
        returns (uint256, uint256);
}

// Venus' vBNB, the market paid in BNB itself: its liquidateBorrow is payable (the repay is the call's value)
// and reverts on a refusal; redeem pays out BNB.
interface IVBNB {
    function liquidateBorrow(address borrower, address vTokenCollateral) external payable;
}

// Venus' Liquidator: when the Comptroller names it (`liquidatorContract`), only it may liquidate. It pulls the
// repay from the caller (for vBNB debt the repay is the call's value), liquidates as itself, keeps its treasury
// share of the seized vTokens and passes the rest to the caller; it reverts on any refusal.
interface IVenusLiquidator {
    function liquidateBorrow(address vToken, address borrower, uint256 repayAmount, address vTokenCollateral)
        external
        payable;
}

interface IBalancerVault {
    function flashLoan(
        address recipient,
        address[] calldata tokens,
        uint256[] calldata amounts,
        bytes calldata userData
    ) external;
}

interface IWrappedNative {
    function deposit() external payable;
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

    // Where executeFlash borrows the cycle's input. fee / feeDenominator: V2 flash swaps only (the pair's
    // own swap fee, which its constant-product check charges on the repayment); the others say their fee.
    struct Loan {
        uint8 kind;
        address lender;
        uint32 fee;
        uint32 feeDenominator;
    }

    // An Aave V3 liquidation run on borrowed debt: `pool` liquidates `user`'s `collateral`.
    struct Liquidation {
        address pool;
        address collateral;
        address user;
    }

    // A Venus liquidation run on borrowed debt: `borrowed` (the vToken the user owes) repays part of
    // `user`'s debt and pays in `collateral` vTokens, which are redeemed for their underlying. A native
    // vToken (vBNB) is paid in the chain's coin: its debt is repaid with the wrapped native borrowed,
    // unwrapped; its seized vTokens redeem to the coin, wrapped before the swap. `liquidator`: Venus'
    // Liquidator when the Comptroller accepts only it (the liquidation goes through it and the contract
    // receives what it passes on), zero to call the borrowed vToken itself. `borrowedVAI`: `borrowed` is the
    // VAI controller and the debt VAI (its `liquidateVAI`; through the Liquidator, its own VAI path).
    struct VenusLiquidation {
        address borrowed;
        address collateral;
        address user;
        bool borrowedNative;
        bool collateralNative;
        address liquidator;
        bool borrowedVAI;
    }

    struct Terms {
        uint256 debtToCover;
        uint256 minProfit;
        uint256 builderPayment;
        uint256 maxBlock;
    }

    // What a flashloan's callback does with the borrowed amount.
    uint8 internal constant ACT_CYCLE = 0;
    uint8 internal constant ACT_LIQUIDATE = 1;
    uint8 internal constant ACT_LIQUIDATE_VENUS = 2;

    uint8 internal constant LOAN_AAVE_V3 = 1;
    uint8 internal constant LOAN_BALANCER_V2 = 2;
    uint8 internal constant LOAN_UNISWAP_V3 = 3;
    uint8 internal constant LOAN_UNISWAP_V2 = 4;
    uint8 internal constant LOAN_AAVE_V2 = 5;

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
    // The flash lender being called and what it lends: only it may call back, once, during the loan.
    address transient flashLender;
    address transient loanToken;
    uint256 transient loanAmount;
    bool transient loanIsToken0;
    uint32 transient loanFee;
    uint32 transient loanFeeDenominator;

    event Executed(address indexed token, uint256 amountIn, uint256 profit, uint256 builderPayment);
    event Borrowed(address indexed lender, address indexed token, uint256 amount, uint256 fee);
    event Liquidated(address indexed user, address indexed collateral, uint256 debtCovered, uint256 seized);
    event VenusLiquidated(
        address indexed user,
        address indexed vTokenCollateral,
        uint256 repaid,
        uint256 seizedVTokens,
        uint256 redeemed
    );

    error NotOwner();
    error NotACycle();
    error Expired(uint256 blockNumber, uint256 maxBlock);
    error InsufficientProfit(uint256 balanceBefore, uint256 balanceAfter, uint256 required);
    error UnexpectedCallback(address caller);
    error TransferFailed();
    error UnknownLoan(uint8 kind);
    error LoanNotTaken(address lender);
    error VenusRefused(address vToken, uint256 code);
    error NotWrappedNative(address token);

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
        return _execute(hops, amountIn, minProfit, builderPayment, maxBlock, Loan(0, address(0), 0, 0));
    }

    // The same cycle on `amountIn` borrowed from `loan.lender`: the profit is what is left after the
    // loan and its fee are repaid.
    function executeFlash(
        Hop[] calldata hops,
        uint256 amountIn,
        uint256 minProfit,
        uint256 builderPayment,
        uint256 maxBlock,
        Loan calldata loan
    ) external onlyOwner returns (uint256 profit) {
        if (loan.kind == 0 || loan.kind > LOAN_AAVE_V2) revert UnknownLoan(loan.kind);
        return _execute(hops, amountIn, minProfit, builderPayment, maxBlock, loan);
    }

    // Liquidates an Aave V3 position with `terms.debtToCover` of the debt asset borrowed from
    // `loan.lender`, swaps all the collateral seized back into the debt asset through `hops`
    // (collateral -> ... -> debt) and repays the loan: the profit is the debt asset kept. The debt asset
    // is the loan's token, the last hop's output.
    function liquidate(
        Liquidation calldata target,
        Hop[] calldata hops,
        Terms calldata terms,
        Loan calldata loan
    ) external onlyOwner returns (uint256) {
        if (block.number > terms.maxBlock) revert Expired(block.number, terms.maxBlock);
        if (loan.kind == 0 || loan.kind > LOAN_AAVE_V2) revert UnknownLoan(loan.kind);
        address debt = _pathEnd(hops, target.collateral);
        uint256 balanceBefore = IERC20(debt).balanceOf(address(this));
        _borrow(loan, debt, terms.debtToCover, abi.encode(ACT_LIQUIDATE, abi.encode(target, hops)));
        return _settle(debt, terms.debtToCover, balanceBefore, terms.minProfit, terms.builderPayment);
    }

    // Liquidates a Venus position with `terms.debtToCover` of the borrowed vToken's underlying borrowed from
    // `loan.lender`: `liquidateBorrow` on `target.borrowed`, the seized `target.collateral` vTokens redeemed,
    // the redeemed underlying swapped back through `hops` (collateral underlying -> ... -> debt underlying)
    // and the loan repaid: the profit is the debt underlying kept. A refusal of the vToken (an error code,
    // Compound V2's way) reverts the whole call. A native leg's underlying is the wrapped native: the loan
    // of vBNB debt, the swap's input for vBNB collateral.
    function liquidateVenus(
        VenusLiquidation calldata target,
        Hop[] calldata hops,
        Terms calldata terms,
        Loan calldata loan
    ) external onlyOwner returns (uint256) {
        if (block.number > terms.maxBlock) revert Expired(block.number, terms.maxBlock);
        if (loan.kind == 0 || loan.kind > LOAN_AAVE_V2) revert UnknownLoan(loan.kind);
        if (hops.length == 0) revert NotACycle();
        address debt = _pathEnd(hops, hops[0].tokenIn);
        if (target.borrowedNative && debt != wrappedNative) revert NotWrappedNative(debt);
        if (target.collateralNative && hops[0].tokenIn != wrappedNative) revert NotWrappedNative(hops[0].tokenIn);
        uint256 balanceBefore = IERC20(debt).balanceOf(address(this));
        _borrow(loan, debt, terms.debtToCover, abi.encode(ACT_LIQUIDATE_VENUS, abi.encode(target, hops)));
        return _settle(debt, terms.debtToCover, balanceBefore, terms.minProfit, terms.builderPayment);
    }

    // The last token of a path of hops from `start`.
    function _pathEnd(Hop[] calldata hops, address start) internal pure returns (address) {
        uint256 count = hops.length;
        if (count == 0 || hops[0].tokenIn != start) revert NotACycle();
        for (uint256 i = 1; i < count; ++i) {
            if (hops[i].tokenIn != hops[i - 1].tokenOut) revert NotACycle();
        }
        return hops[count - 1].tokenOut;
    }

    function _execute(
        Hop[] calldata hops,
        uint256 amountIn,
        uint256 minProfit,
        uint256 builderPayment,
        uint256 maxBlock,
        Loan memory loan
    ) internal returns (uint256 profit) {
        if (block.number > maxBlock) revert Expired(block.number, maxBlock);
        uint256 count = hops.length;
        if (count == 0 || hops[0].tokenIn != hops[count - 1].tokenOut) revert NotACycle();
        for (uint256 i = 1; i < count; ++i) {
            if (hops[i].tokenIn != hops[i - 1].tokenOut) revert NotACycle();
        }
        address token = hops[0].tokenIn;
        uint256 balanceBefore = IERC20(token).balanceOf(address(this));

        if (loan.kind == 0) {
            _cycle(hops, amountIn);
        } else {
            _borrow(loan, token, amountIn, abi.encode(ACT_CYCLE, abi.encode(hops)));
        }
        profit = _settle(token, amountIn, balanceBefore, minProfit, builderPayment);
    }

    // Reverts unless the contract holds `minProfit` more of `token` than before (and the builder payment,
    // when that comes out of the profit); pays the builder; the profit kept.
    function _settle(
        address token,
        uint256 amountIn,
        uint256 balanceBefore,
        uint256 minProfit,
        uint256 builderPayment
    ) internal returns (uint256 profit) {
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

    function _cycle(Hop[] memory hops, uint256 amountIn) internal {
        uint256 count = hops.length;
        uint256 amount = amountIn;
        // Whether the previous hop already delivered `amount` into this hop's V2 pair.
        bool delivered = false;
        for (uint256 i = 0; i < count; ++i) {
            Hop memory hop = hops[i];
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
    }

    // -- flashloans ------------------------------------------------------------------------------

    function _borrow(Loan memory loan, address token, uint256 amount, bytes memory data) internal {
        flashLender = loan.lender;
        loanToken = token;
        loanAmount = amount;
        uint8 kind = loan.kind;
        if (kind == LOAN_AAVE_V3) {
            IAaveV3Pool(loan.lender).flashLoanSimple(address(this), token, amount, data, 0);
        } else if (kind == LOAN_BALANCER_V2) {
            address[] memory tokens = new address[](1);
            uint256[] memory amounts = new uint256[](1);
            tokens[0] = token;
            amounts[0] = amount;
            IBalancerVault(loan.lender).flashLoan(address(this), tokens, amounts, data);
        } else if (kind == LOAN_UNISWAP_V3) {
            bool isToken0 = IUniswapV3Flash(loan.lender).token0() == token;
            loanIsToken0 = isToken0;
            IUniswapV3Flash(loan.lender).flash(address(this), isToken0 ? amount : 0, isToken0 ? 0 : amount, data);
        } else if (kind == LOAN_AAVE_V2) {
            address[] memory assets = new address[](1);
            uint256[] memory amounts = new uint256[](1);
            uint256[] memory modes = new uint256[](1);
            assets[0] = token;
            amounts[0] = amount;
            IAaveV2Pool(loan.lender).flashLoan(address(this), assets, amounts, modes, address(this), data, 0);
        } else {
            bool isToken0 = IUniswapV2Pair(loan.lender).token0() == token;
            loanFee = loan.fee;
            loanFeeDenominator = loan.feeDenominator;
            IUniswapV2Pair(loan.lender).swap(isToken0 ? amount : 0, isToken0 ? 0 : amount, address(this), data);
        }
        // The lender must have called back (and so been repaid) before returning.
        if (flashLender != address(0)) revert LoanNotTaken(loan.lender);
    }

    // Runs what the loan was taken for on the borrowed amount; only the lender being called, once,
    // during its loan.
    function _onLoan(bytes calldata data) internal returns (address token, uint256 amount) {
        if (msg.sender != flashLender || msg.sender == address(0)) revert UnexpectedCallback(msg.sender);
        flashLender = address(0);
        (token, amount) = (loanToken, loanAmount);
        (uint8 action, bytes memory payload) = abi.decode(data, (uint8, bytes));
        if (action == ACT_CYCLE) {
            _cycle(abi.decode(payload, (Hop[])), amount);
        } else if (action == ACT_LIQUIDATE) {
            (Liquidation memory target, Hop[] memory hops) = abi.decode(payload, (Liquidation, Hop[]));
            _liquidate(target, hops, token, amount);
        } else {
            (VenusLiquidation memory venus, Hop[] memory path) = abi.decode(payload, (VenusLiquidation, Hop[]));
            _liquidateVenus(venus, path, token, amount);
        }
    }

    function _liquidateVenus(VenusLiquidation memory target, Hop[] memory hops, address debt, uint256 amount) internal {
        IVToken collateral = IVToken(target.collateral);
        address underlying = hops[0].tokenIn;
        uint256 held = collateral.balanceOf(address(this));
        uint256 code;
        if (target.liquidator != address(0)) {
            // Through Venus' Liquidator (it reverts on a refusal): for vBNB debt exactly the borrowed amount is
            // unwrapped and sent as the value (it must equal the repay); else it pulls exactly the approved repay.
            IVenusLiquidator liquidator = IVenusLiquidator(target.liquidator);
            if (target.borrowedNative) {
                IWrappedNative(debt).withdraw(amount);
                liquidator.liquidateBorrow{value: amount}(target.borrowed, target.user, amount, target.collateral);
            } else {
                _approve(debt, target.liquidator, amount);
                liquidator.liquidateBorrow(target.borrowed, target.user, amount, target.collateral);
                _approve(debt, target.liquidator, 0);
            }
        } else if (target.borrowedVAI) {
            // It takes what it repays (the amount, or a unit or two less from its split: kept as profit).
            _approve(debt, target.borrowed, amount);
            (code, ) = IVAIController(target.borrowed).liquidateVAI(target.user, amount, target.collateral);
            if (code != 0) revert VenusRefused(target.borrowed, code);
            _approve(debt, target.borrowed, 0);
        } else if (target.borrowedNative) {
            // Exactly the borrowed amount unwrapped and sent: vBNB takes all of the value as the repay
            // (it must equal the repay) and reverts on a refusal; the contract's own coin is not touched.
            IWrappedNative(debt).withdraw(amount);
            IVBNB(target.borrowed).liquidateBorrow{value: amount}(target.user, target.collateral);
        } else {
            _approve(debt, target.borrowed, amount);
            code = IVToken(target.borrowed).liquidateBorrow(target.user, amount, target.collateral);
            if (code != 0) revert VenusRefused(target.borrowed, code);
            _approve(debt, target.borrowed, 0);
        }
        uint256 seized = collateral.balanceOf(address(this)) - held;
        uint256 before = target.collateralNative ? address(this).balance : IERC20(underlying).balanceOf(address(this));
        code = collateral.redeem(seized);
        if (code != 0) revert VenusRefused(target.collateral, code);
        uint256 redeemed;
        if (target.collateralNative) {
            // What the redemption paid in the coin (less the treasury's share), all of it wrapped for the swap.
            redeemed = address(this).balance - before;
            IWrappedNative(underlying).deposit{value: redeemed}();
        } else {
            redeemed = IERC20(underlying).balanceOf(address(this)) - before;
        }
        emit VenusLiquidated(target.user, target.collateral, amount, seized, redeemed);
        _cycle(hops, redeemed);
    }

    function _liquidate(Liquidation memory target, Hop[] memory hops, address debt, uint256 amount) internal {
        uint256 held = IERC20(target.collateral).balanceOf(address(this));
        _approve(debt, target.pool, amount);
        IAaveV3Liquidation(target.pool).liquidationCall(target.collateral, debt, target.user, amount, false);
        // The pool may not take all of it (a smaller debt): what it leaves stays as profit.
        _approve(debt, target.pool, 0);
        uint256 seized = IERC20(target.collateral).balanceOf(address(this)) - held;
        emit Liquidated(target.user, target.collateral, amount, seized);
        _cycle(hops, seized);
    }

    function _repaid(address token, uint256 amount, uint256 fee) internal {
        emit Borrowed(msg.sender, token, amount, fee);
    }

    // Aave V3 flashLoanSimple: the pool takes amount + premium back with transferFrom.
    function executeOperation(
        address,
        uint256,
        uint256 premium,
        address initiator,
        bytes calldata params
    ) external returns (bool) {
        if (initiator != address(this)) revert UnexpectedCallback(initiator);
        (address token, uint256 amount) = _onLoan(params);
        _approve(token, msg.sender, amount + premium);
        _repaid(token, amount, premium);
        return true;
    }

    // Aave V2 LendingPool flashLoan (one asset, mode 0): the pool takes amount + premium back with transferFrom.
    function executeOperation(
        address[] calldata,
        uint256[] calldata,
        uint256[] calldata premiums,
        address initiator,
        bytes calldata params
    ) external returns (bool) {
        if (initiator != address(this)) revert UnexpectedCallback(initiator);
        (address token, uint256 amount) = _onLoan(params);
        _approve(token, msg.sender, amount + premiums[0]);
        _repaid(token, amount, premiums[0]);
        return true;
    }

    // Balancer V2 vault: repaid by transfer before returning.
    function receiveFlashLoan(
        address[] calldata,
        uint256[] calldata,
        uint256[] calldata feeAmounts,
        bytes calldata userData
    ) external {
        (address token, uint256 amount) = _onLoan(userData);
        _transfer(token, msg.sender, amount + feeAmounts[0]);
        _repaid(token, amount, feeAmounts[0]);
    }

    function uniswapV3FlashCallback(uint256 fee0, uint256 fee1, bytes calldata data) external {
        _repayV3Flash(fee0, fee1, data);
    }

    function pancakeV3FlashCallback(uint256 fee0, uint256 fee1, bytes calldata data) external {
        _repayV3Flash(fee0, fee1, data);
    }

    function _repayV3Flash(uint256 fee0, uint256 fee1, bytes calldata data) internal {
        bool isToken0 = loanIsToken0;
        (address token, uint256 amount) = _onLoan(data);
        uint256 fee = isToken0 ? fee0 : fee1;
        _transfer(token, msg.sender, amount + fee);
        _repaid(token, amount, fee);
    }

    // A V2 flash swap repaid in the borrowed token: the pair's check needs
    // repaid·(denominator − fee) ≥ borrowed·denominator, so the least repayment rounds that up.
    function uniswapV2Call(address sender, uint256, uint256, bytes calldata data) external {
        _repayV2Flash(sender, data);
    }

    // PancakeSwap V2 pairs call back under their own name (their check: 10000 and a fee of 25).
    function pancakeCall(address sender, uint256, uint256, bytes calldata data) external {
        _repayV2Flash(sender, data);
    }

    function _repayV2Flash(address sender, bytes calldata data) internal {
        if (sender != address(this)) revert UnexpectedCallback(sender);
        (uint256 fee, uint256 denominator) = (loanFee, loanFeeDenominator);
        (address token, uint256 amount) = _onLoan(data);
        uint256 owed = (amount * denominator + (denominator - fee) - 1) / (denominator - fee);
        _transfer(token, msg.sender, owed);
        _repaid(token, amount, owed - amount);
    }

    function _swapV2(Hop memory hop, uint256 amountIn, address recipient) internal returns (uint256 amountOut) {
        (uint256 reserve0, uint256 reserve1, ) = IUniswapV2Pair(hop.pool).getReserves();
        bool zeroForOne = hop.tokenIn < hop.tokenOut;
        (uint256 reserveIn, uint256 reserveOut) = zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0);
        uint256 withFee = amountIn * (hop.feeDenominator - hop.fee);
        amountOut = (withFee * reserveOut) / (reserveIn * hop.feeDenominator + withFee);
        (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), amountOut) : (amountOut, uint256(0));
        IUniswapV2Pair(hop.pool).swap(out0, out1, recipient, "");
    }

    function _swapV3(Hop memory hop, uint256 amountIn, address recipient) internal returns (uint256 amountOut) {
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

    function _approve(address token, address spender, uint256 amount) internal {
        (bool ok, bytes memory data) = token.call(abi.encodeCall(IERC20.approve, (spender, amount)));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed();
    }
}
