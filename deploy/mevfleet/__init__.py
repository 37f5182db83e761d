"""mevfleet: provision and verify a fleet of tuned, firewalled chain-node hosts."""

from pathlib import Path

__version__ = "0.1.0"

# Repository root when run from a checkout: templates/ and inventory/ live there (DESIGN.md layout).
REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT / "templates"
INVENTORY_DIR = REPO_ROOT / "inventory"
