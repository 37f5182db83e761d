"""boto3 clients for the cloud commands, and the record of every AWS operation they call.

The endpoint is boto3's own setting (`AWS_ENDPOINT_URL`, or `--endpoint-url`): the tests point it at a
local moto server; nothing here knows about tests. Credentials come from boto3's usual chain and are
never printed: errors are reduced to the service's error code and message (`describe_error`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
import botocore.exceptions
from botocore.config import Config

from .errors import CloudError

# Operations whose IAM action is not "<service>:<OperationName>" (S3's request names differ from its
# permission names). Everything else maps one to one.
IAM_ACTION_OVERRIDES = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "PutBucketLifecycleConfiguration"): "s3:PutLifecycleConfiguration",
    ("s3", "GetBucketLifecycleConfiguration"): "s3:GetLifecycleConfiguration",
    ("s3", "CopyObject"): "s3:PutObject",  # plus s3:GetObject on the source (the same bucket)
}

# Every client is made through `Aws.client`; hooks registered here see every call (the IAM coverage test).
_CALL_HOOKS: list[Callable[[str, str], None]] = []


def add_call_hook(hook: Callable[[str, str], None]) -> None:
    _CALL_HOOKS.append(hook)


def remove_call_hook(hook: Callable[[str, str], None]) -> None:
    _CALL_HOOKS.remove(hook)


def iam_action(service: str, operation: str) -> str:
    return IAM_ACTION_OVERRIDES.get((service, operation), f"{service}:{operation}")


__all__ = ["Aws", "CloudError", "add_call_hook", "describe_error", "iam_action", "remove_call_hook"]


def describe_error(exc: Exception) -> str:
    """The AWS error code and message, or the connection problem, without request signatures or keys."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "request")
        return f"{op}: {err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionClosedError):
        return f"cannot reach the AWS endpoint ({type(exc).__name__})"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials found (environment, ~/.aws or an instance role)"
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return type(exc).__name__
    return str(exc)


@dataclass
class Aws:
    """One boto3 session per command; a client per (service, region)."""

    region: str | None = None
    endpoint_url: str | None = None
    _session: boto3.Session = field(init=False, repr=False)
    _clients: dict[tuple[str, str | None], object] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._session = boto3.Session(region_name=self.region)
        self._session.events.register("before-call", self._record)

    @staticmethod
    def _record(model, **_: object) -> None:
        service = model.service_model.signing_name
        for hook in list(_CALL_HOOKS):
            hook(service, model.name)

    def client(self, service: str, region: str | None = None):
        key = (service, region or self.region)
        if key not in self._clients:
            # Few, bounded retries: a dead endpoint must fail the run, not hang it.
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
            self._clients[key] = self._session.client(
                service, region_name=key[1], endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[key]

    @property
    def region_name(self) -> str:
        return self.region or self._session.region_name or "us-east-1"
