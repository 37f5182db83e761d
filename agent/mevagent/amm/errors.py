"""The one error the AMM math raises."""


class Revert(ValueError):
    """The on-chain code would revert on these inputs.

    The message is the contract's revert reason where it has one ("SPL", "LS", ...), so a caller
    can tell a swap that can never land from a bug in its own state.
    """
