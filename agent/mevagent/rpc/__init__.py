"""Raw JSON-RPC 2.0 to the co-located node: orjson over its IPC socket, WebSocket as the fallback.

web3.py's provider stack costs several times the round trip itself, so the hot path
speaks JSON-RPC directly on one persistent connection, batches what it can, and keeps eth_subscribe
streams on the same connection.
"""

from mevagent.rpc.backoff import Backoff
from mevagent.rpc.client import ConnectionLost, Notification, RpcClient, RpcError, Subscription, connect, connect_first

__all__ = [
    "Backoff",
    "ConnectionLost",
    "Notification",
    "RpcClient",
    "RpcError",
    "Subscription",
    "connect",
    "connect_first",
]
