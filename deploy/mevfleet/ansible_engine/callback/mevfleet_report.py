"""Ansible callback: every task result of a mevfleet run as one JSON line, and a progress line per change.

ansible-core ships no machine-readable callback; the engine (ansible_engine/run.py) reads this file to say,
per host, which tasks changed or failed, exactly as it does for the pyinfra engine.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: mevfleet_report
type: notification
short_description: task results of a mevfleet run as JSON lines
description: Writes each task result to the file named by MEVFLEET_ANSIBLE_REPORT.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "mevfleet_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._out = open(os.environ["MEVFLEET_ANSIBLE_REPORT"], "a", encoding="utf-8")  # noqa: SIM115

    def _write(self, status: str, result) -> None:
        data = result._result
        line = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "status": status,
            "changed": bool(data.get("changed")) and status == "ok",
            "t": round(time.monotonic(), 3),
            "msg": str(data.get("msg") or data.get("stderr") or "")[-2000:],
        }
        if result._task.get_name() == "Read the host's managed state in one command":
            line["stdout"] = data.get("stdout", "")
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()

    def v2_runner_on_ok(self, result) -> None:
        self._write("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._write("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_unreachable(self, result) -> None:
        self._write("unreachable", result)

    def v2_runner_item_on_failed(self, result) -> None:
        self._write("item-failed", result)
