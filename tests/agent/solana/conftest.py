import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.solana.standin import STANDIN, RunningStandIn, start_standin

# These tests need the Solana packages deploy/bootstrap.sh installs (solders, the `solana` client, the
# agent's `solana-standin` script). A checkout whose venv predates them is told so instead of failing
# every other agent test run at import.
MISSING = [m for m in ("solders", "solana") if importlib.util.find_spec(m) is None]
if not STANDIN.exists():
    MISSING.append("solana-standin")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool:
    return bool(MISSING) and collection_path.name.startswith("test_")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if MISSING:
        terminalreporter.write_line(
            f"tests/agent/solana NOT RUN: {', '.join(MISSING)} missing; run deploy/bootstrap.sh", yellow=True
        )


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandIn]:
    running = start_standin()
    try:
        yield running
    finally:
        running.stop()
