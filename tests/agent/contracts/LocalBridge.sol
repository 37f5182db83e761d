// SPDX-License-Identifier: MIT
// A local bridge for the tests: the deposit and fill events have the shape of Across's SpokePool
// (FundsDeposited on the origin chain, FilledRelay on the destination, matched by origin chain id and
// deposit id), so the bridge monitor reads real transactions on two anvil chains filled by a relayer.
pragma solidity 0.8.30;

interface IERC20Like {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract LocalBridge {
    uint32 public numberOfDeposits;
    mapping(bytes32 => bool) public filled;

    event FundsDeposited(
        address inputToken,
        address outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 indexed destinationChainId,
        uint32 indexed depositId,
        address indexed depositor,
        address recipient
    );
    event FilledRelay(
        address inputToken,
        address outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 repaymentChainId,
        uint256 indexed originChainId,
        uint32 indexed depositId,
        address indexed relayer,
        address recipient
    );

    function deposit(
        address inputToken,
        address outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 destinationChainId,
        address recipient
    ) external {
        require(IERC20Like(inputToken).transferFrom(msg.sender, address(this), inputAmount), "transfer");
        emit FundsDeposited(
            inputToken, outputToken, inputAmount, outputAmount, destinationChainId, numberOfDeposits, msg.sender, recipient
        );
        numberOfDeposits += 1;
    }

    function fillRelay(
        address inputToken,
        address outputToken,
        uint256 inputAmount,
        uint256 outputAmount,
        uint256 originChainId,
        uint32 depositId,
        address recipient
    ) external {
        bytes32 key = keccak256(abi.encode(originChainId, depositId));
        require(!filled[key], "filled");
        filled[key] = true;
        require(IERC20Like(outputToken).transferFrom(msg.sender, recipient, outputAmount), "transfer");
        emit FilledRelay(
            inputToken, outputToken, inputAmount, outputAmount, block.chainid, originChainId, depositId, msg.sender, recipient
        );
    }
}
