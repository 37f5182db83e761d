// SPDX-License-Identifier: MIT
// Test-only: the Balancer V2 Vault asks an IAuthorizer whether an account may perform an action. This one
// lets its deployer do everything (setting the flashloan fee on the ProtocolFeesCollector) and nobody
// else. Written for tests/agent/balancer_fixture.py; never deployed anywhere else.
pragma solidity ^0.7.0;

contract BalancerTestAuthorizer {
    address public immutable admin;

    constructor() {
        admin = msg.sender;
    }

    function canPerform(bytes32, address account, address) external view returns (bool) {
        return account == admin;
    }
}
