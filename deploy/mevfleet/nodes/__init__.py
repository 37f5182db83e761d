"""Chain nodes: their slice of the host plan (planning.py: model.NodePlan, what runs where), the files a
node host gets, and the operations on running nodes (status, upgrade, rollback), which read only the plan."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ..model import FileSpec, HostPlan, NodePlan, Removal, RemovedUnit
from .artifacts import MARKER

if TYPE_CHECKING:
    from ..probe import HostState
    from ..render import HostFacts, ManagedFile
    from ..steps import Given, Step

CONCERN = "nodes"


def unit_path(node: NodePlan) -> str:
    return f"/etc/systemd/system/{node.unit}.service"


def node_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """Each node's unit (and client config), concern "nodes"; engine/nodes.py restarts on change."""
    files = []
    for node in plan.nodes:
        files.append(
            FileSpec(path=unit_path(node), concern=CONCERN, template=node.unit_template, context={"node": node})
        )
        files += [
            FileSpec(path=f"{node.config_dir}/{name}", concern=CONCERN, template=template, context={"node": node})
            for name, template in node.config_templates.items()
        ]
    return files


def files_of(node: NodePlan, files: list[ManagedFile]) -> list[ManagedFile]:
    """The files a node's process reads: a change to any of them restarts that node only."""
    return [f for f in files if f.path == unit_path(node) or f.path.startswith(node.config_dir + "/")]


def removal_paths(removed: RemovedUnit) -> tuple[str, ...]:
    """What an earlier deploy of the unit leaves on a host; any of them present means it is to be removed."""
    return (removed.unit_file, removed.dropins, removed.config_dir, removed.link_dir)


def removals(plan: HostPlan) -> list[Removal]:
    """The plan's dropped node units (plan.remove): each unit stopped and disabled, its unit file, drop-ins,
    config and release links removed. The data dir, the service user and the shared releases stay."""
    return [
        Removal(concern=CONCERN, name=r.unit, units=(f"{r.unit}.service",), paths=removal_paths(r), kept="data dir")
        for r in plan.remove
    ]


def marker(node: NodePlan) -> str:
    return f"{node.release_dir}/{MARKER}"


def probe_files(plan: HostPlan) -> list[str]:
    """What the one-command probe must read for the nodes: release markers and JWT copies."""
    return [marker(n) for n in plan.nodes if installs(n)] + [p for j in plan.jwts for p, _ in j.copies]


def probe_links(plan: HostPlan) -> list[str]:
    return [link for n in plan.nodes if installs(n) for link in (n.link, n.previous_link)]


def node_units(plan: HostPlan) -> list[str]:
    return [f"{n.unit}.service" for n in plan.nodes]


def installs(node: NodePlan) -> bool:
    """A release directory behind a `current` link: a binary artifact, or the agent's wheelhouse as a venv."""
    return node.start and node.runtime in ("binary", "agent")


def release_ok(node: NodePlan, current: HostState) -> bool:
    """The node's release is on the host, complete (its marker holds the artifact's checksum)."""
    have = current.files.get(marker(node))
    if node.runtime == "agent":
        return have is not None  # the release is named after the agent's sources: present means complete
    return have is not None and have.sha256 == hashlib.sha256(f"{node.artifact.sha256}\n".encode()).hexdigest()


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """Every node of the host: JWT secrets, releases (each once), then per node its files, its link, and one
    restart if any of them or its JWT changed.

    The install (which checks sha256 on the host) comes first, so a checksum mismatch fails the host before
    any file, link or unit of a running node changes. Units the plan dropped were removed before (the base
    concern's Removals: they may hold a port a node binds)."""
    import shlex

    # Imported here: steps.py names the release types, and release.py imports this package.
    from ..release import node_release
    from ..steps import (
        ArtifactInstall,
        Files,
        FilesChanged,
        Image,
        Jwt,
        JwtRewrites,
        NotSwitched,
        Running,
        Select,
        Switch,
        WheelInstall,
    )

    out: list[Step] = [
        Jwt(name=f"{jwt.chain} JWT secret (identical on both sides, 0600)", jwt=jwt) for jwt in plan.jwts
    ]
    seen: set[str] = set()
    for node in plan.nodes:
        if installs(node) and node.runtime == "agent" and node.release_dir not in seen:
            seen.add(node.release_dir)
            out.append(
                WheelInstall(
                    name=f"{node.client} release {node.version} (the agent's wheels, Python checked)",
                    release=node_release(node),
                )
            )
        elif installs(node) and node.release_dir not in seen:
            seen.add(node.release_dir)
            out.append(
                ArtifactInstall(name=f"{node.client} {node.version} release (sha256 checked on the host)", node=node)
            )
        elif node.start and node.runtime == "container":
            out.append(Image(name=f"{node.client} image pinned by digest", node=node))
    for node in plan.nodes:
        # The files a node's process reads (files_of): a change to any of them restarts that node only.
        own = Select(concern=CONCERN, paths=(unit_path(node),), prefixes=(node.config_dir + "/",))
        out.append(Files(name=f"{node.unit} unit and config", files=own))
        if not node.start:
            # Rendered and installed for checking, never enabled: the plan says why (skip_reason).
            continue
        release = node_release(node)
        if installs(node):
            out.append(Switch(name=f"{node.unit} current -> {node.version}", release=release))
        out.append(
            Running(
                name=f"{node.unit} running",
                unit=shlex.quote(f"{node.unit}.service"),
                restart_if=(
                    FilesChanged(files=own),
                    *((NotSwitched(release=release),) if installs(node) else ()),
                    JwtRewrites(jwts=plan.jwts, unit=node.unit),
                ),
            )
        )
    return tuple(out)
