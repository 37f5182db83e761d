"""The cloud commands' one error type (no boto3 import: the CLI loads this at start)."""


class CloudError(Exception):
    """A refusal or failure the operator can act on; its text never holds a credential or a secret."""
