"""The Solana stand-in node and the account bytes of the pools the agent reads from it."""
