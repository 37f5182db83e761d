"""A Solana node SIMULATOR for the devnet and tests: LiteSVM behind Solana JSON-RPC, WebSocket pubsub and
the Jito block-engine JSON-RPC.

It is not a validator: there is no gossip, no consensus, no leader schedule and no ledger on disk; one
process executes transactions in LiteSVM (the SVM runtime with the real System, SPL Token, Token-2022,
ATA and Compute Budget programs) and advances slots on a timer. Every answer that names a version says
"simulator". See docs/solana.md.
"""

SIMULATOR_VERSION = "litesvm-standin-simulator"
