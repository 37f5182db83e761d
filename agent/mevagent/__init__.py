"""mevagent: the searcher agent installed on every node host, next to its node."""

__version__ = "0.1.0"
