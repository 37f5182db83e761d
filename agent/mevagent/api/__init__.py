"""The agent's control API (aiohttp): loopback by default, bearer token on every mutating call."""

from mevagent.api.app import ROUTES, ControlPlane, Servers, make_app, make_metrics_app, start_servers
from mevagent.api.auth import Token
from mevagent.api.readiness import ReadinessCheck, StateFreshness, node_synced

__all__ = [
    "ROUTES",
    "ControlPlane",
    "ReadinessCheck",
    "Servers",
    "StateFreshness",
    "Token",
    "make_app",
    "make_metrics_app",
    "node_synced",
    "start_servers",
]
