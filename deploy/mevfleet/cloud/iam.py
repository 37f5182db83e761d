"""The least-privilege IAM policy for the cloud commands (iam-policy.json beside this file).

Every AWS operation the code calls maps to one IAM action (aws.iam_action); the moto tests record the
calls and fail if one is missing from the policy (tests/unit/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

POLICY_PATH = Path(__file__).with_name("iam-policy.json")


def policy() -> dict:
    return json.loads(POLICY_PATH.read_text())


def policy_actions() -> set[str]:
    actions: set[str] = set()
    for statement in policy()["Statement"]:
        if statement["Effect"] == "Allow":
            value = statement["Action"]
            actions.update([value] if isinstance(value, str) else value)
    return actions
