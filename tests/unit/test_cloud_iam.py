"""The least-privilege IAM policy (deploy/mevfleet/cloud/iam-policy.json) covers exactly what the cloud
commands call. The moto tests record every call at run time (tests/unit/conftest.py); this test reads the
code itself, so an operation on a path no test walks is checked too."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.session
from botocore import xform_name

from mevfleet.cloud.aws import iam_action
from mevfleet.cloud.iam import policy, policy_actions

CLOUD = Path(__file__).resolve().parents[2] / "deploy" / "mevfleet" / "cloud"
SERVICES = ("ec2", "s3", "kms")


# How the code names its clients: `aws.client("kms").op(`, `ec2.op(` (an EC2 client), `self._s3.op`
# (the S3 client, often passed to a retry wrapper), and paginators by operation name.
CALL_PATTERNS = (
    (re.compile(r'client\("(ec2|s3|kms)"[^)]*\)\.([a-z][a-z0-9_]+)'), None),
    (re.compile(r"\b(ec2)\.(?:get_paginator\(\")?([a-z][a-z0-9_]+)"), None),
    (re.compile(r"\b_s3\.(?:get_paginator\(\")?([a-z][a-z0-9_]+)"), "s3"),
)


def _operations_in_code() -> set[tuple[str, str]]:
    session = botocore.session.get_session()
    methods = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        methods[service] = {xform_name(name): (model.signing_name, name) for name in model.operation_names}
    called = set()
    for path in CLOUD.glob("*.py"):
        text = path.read_text()
        for pattern, fixed in CALL_PATTERNS:
            for match in pattern.finditer(text):
                service, method = (fixed, match[1]) if fixed else (match[1], match[2])
                if method in methods[service]:
                    called.add(methods[service][method])
    return called


def test_every_operation_in_the_code_is_allowed_and_nothing_more():
    called = _operations_in_code()
    services_called = {s for s, _ in called}
    assert services_called == {"ec2", "s3", "kms"}
    needed = {iam_action(s, o) for s, o in called}
    # HeadObject/HeadBucket/ListObjectsV2 are authorised by GetObject/ListBucket; CreateTags comes with
    # CreateSecurityGroup's TagSpecifications.
    needed.add("ec2:CreateTags")
    assert needed - policy_actions() == set(), "called but not allowed"
    assert policy_actions() - needed == set(), "allowed but never called"


def test_the_policy_is_least_privilege():
    doc = policy()
    assert doc["Version"] == "2012-10-17"
    for statement in doc["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert statement["Effect"] == "Allow"
        assert not any("*" in a for a in actions), statement["Sid"]
        mutating = [a for a in actions if not a.split(":")[1].startswith(("Describe", "Get", "List"))]
        if any(a.startswith("ec2:") for a in mutating):
            attaching = actions == ["ec2:ModifyInstanceAttribute"]
            if attaching and statement["Resource"] == "arn:aws:ec2:*:*:security-group/*":
                # The groups an attachment names: ours and the operator's own, passed back unchanged (the
                # call replaces the instance's set), so no tag can be required of them; the instance must
                # be one of a fleet (the statement before).
                continue
            # EC2 changes only on groups that carry the ownership tag (or are created with it), and on
            # instances tagged as a fleet's.
            assert "Condition" in statement, statement["Sid"]
        if any(a.startswith("kms:") for a in actions):
            assert statement["Condition"]["StringEquals"]["kms:EncryptionContext:purpose"] == "mevfleet-backup"
        if any(a.startswith("s3:") for a in actions):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all(r.startswith("arn:aws:s3:::mevfleet-backup-") for r in resources)
