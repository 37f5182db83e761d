"""Chain nodes: the files a node host gets, and the operations on running nodes (status, upgrade,
rollback). The host plan (plan.NodePlan) says what runs; this package only reads it."""

from __future__ import annotations

from ..catalog import load_catalog
from ..plan import HostPlan, NodePlan
from ..render import ManagedFile, render

CONCERN = "nodes"


def unit_path(node: NodePlan) -> str:
    return f"/etc/systemd/system/{node.unit}.service"


def node_files(plan: HostPlan) -> list[ManagedFile]:
    """Each node's unit (and client config), concern "nodes"; engine/nodes.py restarts on change."""
    files = []
    for node in plan.nodes:
        spec = load_catalog().clients[node.client]
        template = "nodes/binary.service.j2" if node.runtime in ("binary", "agent") else "nodes/container.service.j2"
        template = f"nodes/{spec.unit_template}" if spec.unit_template else template
        files.append(ManagedFile(path=unit_path(node), content=render(template, node=node), concern=CONCERN))
        for name, source in spec.config_files.items():
            content = render(f"nodes/{source}", node=node)
            files.append(ManagedFile(path=f"{node.config_dir}/{name}", content=content, concern=CONCERN))
    return files


def files_of(node: NodePlan, files: list[ManagedFile]) -> list[ManagedFile]:
    """The files a node's process reads: a change to any of them restarts that node only."""
    return [f for f in files if f.path == unit_path(node) or f.path.startswith(node.config_dir + "/")]
