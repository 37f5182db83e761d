"""deploy_host: every concern's steps (mevfleet.steps), in the concerns' order, for the host in pyinfra's context."""

from __future__ import annotations

import json

from pyinfra import host

from .. import probe
from ..concerns import CONCERNS, FINALLY
from ..desired import DEFERRED_REPORT, Desired, deferred
from ..drift import Drift, findings
from ..fleetca import HostCredentials
from ..probe import HostState
from ..render import HostFacts, ManagedFile
from ..space import refuse_if_full
from ..steps import CopiedSecret, Given
from .facts import ManagedState
from .live import read_live
from .steps import Run, apply


def read_state(want: Desired) -> HostState:
    current = host.get_fact(ManagedState, script=probe.script(**want.probe_args()))
    if want.plan.owns_kernel is not None:
        current.container = not want.plan.owns_kernel
    return current


def live_drift(want: Desired, authorized_keys: tuple[str, ...] | None = None) -> list[Drift]:
    """What the host runs or holds beyond its managed files (mevfleet.drift), judged against the plan."""
    current = read_state(want)
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    expected = want.expected(facts, authorized_keys)
    return findings(expected, read_live(expected))


def deploy_host(
    want: Desired,
    authorized_keys: tuple[str, ...] | None = None,
    journal_tls: HostCredentials | None = None,
    fleet_copies: tuple[CopiedSecret, ...] = (),
) -> tuple[dict, list[Drift]]:
    """Queue the host's operations; returns what is deferred (and why) and the live drift found.

    want: the host's desired state, made once for this run (the same for file_diffs).

    journal_tls: this host's certificate and key from the fleet CA (journal-remote fleets).
    fleet_copies: secrets the control machine holds for this host (control.py: an agent's token and bus
    password; on the control host, the agents' tokens, the API certificate and Redis's ACL file)."""
    plan = want.plan
    current = read_state(want)
    # Before anything is queued: a host short of room is failed by name and left as it is.
    refuse_if_full(current.filesystems)
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    report = deferred(plan, current)
    drifts = live_drift(want, authorized_keys)

    files = [
        *want.files(facts),
        ManagedFile(path=DEFERRED_REPORT, content=json.dumps(report, indent=2, sort_keys=True) + "\n", concern="plan"),
    ]
    run = Run(want=want, current=current, files=files, drifts=drifts)
    given = Given(copies=tuple(fleet_copies), journal_tls=journal_tls)
    # Each concern's steps, in the concerns' order (concerns.py, the roles' order): what a step does is
    # in its data, the interpreter is chosen by its kind (engine/steps.py).
    for concern in CONCERNS:
        for step in concern.steps(plan, given):
            apply(step, run)
    for step in FINALLY:
        apply(step, run)
    return report, drifts
