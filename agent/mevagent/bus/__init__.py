"""The fleet bus: events to the control plane, commands and the risk lease from it (see events.py)."""
