"""Base concern: the packages every host needs, one locked system user per service, mevfleet's directories,
the host plan and deferral report on the host, and what the plan dropped (each concern's removals).

base_slice is this concern's part of the host plan (plan.py composes it); other concerns add packages they
need (`needs_packages` in agent.py, control.py) instead of the plan naming them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .model import ServicePlan, SystemUser

if TYPE_CHECKING:
    from .catalog import Catalog
    from .model import HostPlan
    from .steps import Given, Step

# Where mevfleet keeps its own state, configuration, logs and releases.
DIRECTORIES = ("/etc/mevfleet", "/var/lib/mevfleet", "/var/log/mevfleet", "/opt/mevfleet")

PackageNeeds = Callable[[list[ServicePlan], "Catalog"], tuple[str, ...]]


def base_slice(services: list[ServicePlan], catalog: Catalog, needs: Iterable[PackageNeeds]) -> dict:
    """packages, users and directories of a host's plan: the fleet's base packages, each service's package,
    then what the other concerns say they need (each once, in the order asked)."""
    packages = list(catalog.fleet.base_packages)
    packages += [s.package for s in services if s.package and s.package not in packages]
    for need in needs:
        packages += [p for p in need(services, catalog) if p not in packages]
    users = sorted({s.user for s in services if s.package is None and s.user != "root"})
    return {
        "packages": tuple(packages),
        "users": tuple(SystemUser(name=u, home=f"/var/lib/{u}") for u in users),
        "directories": DIRECTORIES,
    }


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    from .desired import WITHOUT_RECOMMENDS, directories
    from .steps import Directories, Files, Packages, Removals, Select, Users

    return (
        Packages(packages=tuple(p for p in plan.packages if p not in WITHOUT_RECOMMENDS)),
        Packages(packages=tuple(p for p in plan.packages if p in WITHOUT_RECOMMENDS), no_recommends=True),
        Users(name="System users per service", users=plan.users),
        Directories(name="mevfleet and service directories", directories=tuple(directories(plan))),
        Files(name="Host plan and deferral report", files=Select(concern="plan")),
        # What the plan dropped goes before anything planned starts (a dropped unit may hold a planned port).
        Removals(),
    )


def overrides() -> tuple[Step, ...]:
    """After every concern (roles/base/tasks/overrides.yml): unit files and drop-ins only as planned."""
    from .steps import Repair

    return (Repair(name="Unit files and drop-ins only as planned", kinds=("unit-override",)),)
