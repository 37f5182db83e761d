"""Devnet: local test hosts (systemd containers reached over SSH) for integration tests and demos."""

from mevfleet.devnet.harness import Harness, HarnessError, HostStatus, TestHost

__all__ = ["Harness", "HarnessError", "HostStatus", "TestHost"]
