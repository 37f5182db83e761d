"""`mevfleet validate`: every problem of an inventory at once, the schema's and the host plan's.

A schema error in one host no longer hides another host's port collision: the hosts that pass the
schema still go through the plan compiler, and all problems are reported together, each as
`file: host: field: message`.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InventoryError, Problem
from .inventory import Inventory, inspect_inventory_file
from .model import FleetPlan
from .plan import compile_plan


def check_fleet(path: str | Path) -> tuple[Inventory, FleetPlan]:
    """The inventory and its plan; InventoryError with every problem found, schema and plan alike."""
    inventory, problems = inspect_inventory_file(path)
    plan = None
    if inventory is not None and inventory.hosts:
        try:
            plan = compile_plan(inventory)
        except InventoryError as exc:
            problems = [*problems, *exc.problems]
    if problems or inventory is None or plan is None:
        raise InventoryError(_unique(problems) or [Problem(str(path), None, "hosts", "no valid host")])
    return inventory, plan


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
