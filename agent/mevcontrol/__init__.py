"""The fleet control plane: consumes the agents' events into PostgreSQL, keeps the fleet-wide risk
limits and the risk lease, and serves the operators' URLs (see docs/control-plane.md)."""
