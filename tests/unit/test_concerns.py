"""The concerns as data (mevfleet.steps, mevfleet.concerns): the pyinfra engine loops over them and names
none; their order is the Ansible engine's; every step kind has an interpreter; the base slice takes the
packages other concerns say they need."""

from __future__ import annotations

import ast
import typing

import yaml

from mevfleet import INVENTORY_DIR, REPO_ROOT
from mevfleet.base import base_slice
from mevfleet.catalog import load_catalog
from mevfleet.concerns import CONCERNS, FINALLY
from mevfleet.desired import PROBED, Desired
from mevfleet.engine import steps as engine_steps
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan
from mevfleet.steps import Given, Step

ENGINE_HOST = REPO_ROOT / "deploy" / "mevfleet" / "engine" / "host.py"
SITE = REPO_ROOT / "deploy" / "mevfleet" / "ansible_engine" / "playbooks" / "site.yml"
# Concern names and the modules that declare them (timesync is the time concern, nodes a package).
CONCERN_WORDS = {c.name for c in CONCERNS} | {"timesync", "sshd", "sysctl", "sysctls", "journal", "postgres"}
# Not a concern's: the plan's word on the runtime (read_state), and the run's credentials handed to Given.
ALLOWED = {"owns_kernel", "journal_tls"}


def _named(tree: ast.AST) -> set[str]:
    """Identifiers, imported modules and names, attributes and non-docstring strings of a module."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ImportFrom):
            names.update((node.module or "").split("."))
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(p for a in node.names for p in a.name.split("."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names.add(node.value)
    return names


def test_the_pyinfra_engine_names_no_concern():
    named = _named(ast.parse(ENGINE_HOST.read_text())) - ALLOWED
    words = {w for name in named for w in name.lower().replace("-", "_").replace(".", "_").split("_")}
    assert words & CONCERN_WORDS == set(), "engine/host.py must loop over concerns.CONCERNS, not name them"
    assert not {n for n in named if n.startswith("ensure_")}, "no concern's ensure_* function in engine/host.py"


def test_the_word_check_catches_a_concern_call():
    # The check above, on the kind of code it replaced.
    tree = ast.parse("from .firewall import ensure_firewall\nensure_firewall(of('firewall'), current)\n")
    named = _named(tree)
    assert "firewall" in {w for n in named for w in n.split("_")}


def test_the_concerns_run_in_the_ansible_roles_order():
    (play,) = yaml.safe_load(SITE.read_text())
    roles = [r["role"] for r in play["roles"]]
    assert [c.name for c in CONCERNS] == roles
    assert all((REPO_ROOT / "roles" / name / "tasks" / "main.yml").is_file() for name in roles)
    # The post task is the base role's overrides, the engine's FINALLY.
    assert play["post_tasks"][0]["ansible.builtin.include_role"] == {"name": "base", "tasks_from": "overrides"}
    assert [step.kinds for step in FINALLY] == [("unit-override",)]


def test_every_step_kind_has_an_interpreter():
    kinds = set(typing.get_args(Step))
    assert kinds and kinds == set(engine_steps.INTERPRETERS)


def test_every_devnet_host_declares_only_interpreted_steps_and_each_key_before_its_use():
    plan = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
    for host in plan.hosts.values():
        keys: set[str] = set()
        declared = [step for concern in CONCERNS for step in concern.steps(host, Given())]
        for step in declared:
            assert type(step) in engine_steps.INTERPRETERS, step
            if_changed = getattr(step, "if_changed", None)
            assert if_changed is None or if_changed in keys, (host.name, step)
            if getattr(step, "key", None):
                keys.add(step.key)
        # Every file concern the host renders is picked by some step (nothing rendered goes unapplied).
        picked = {s.files.concern for s in declared if hasattr(s, "files") and hasattr(s.files, "concern")}
        rendered = {f.concern for f in Desired(host).files(PROBED)}
        assert rendered <= picked, (host.name, rendered - picked)


def test_the_base_slice_adds_what_other_concerns_need_once_in_order():
    catalog = load_catalog()
    packages = base_slice([], catalog, (lambda s, c: ("python3-venv",), lambda s, c: ("python3-venv", "x")))["packages"]
    assert packages == (*catalog.fleet.base_packages, "python3-venv", "x")
    assert "python3-venv" not in base_slice([], catalog, (lambda s, c: (),))["packages"]
