"""Signing keys, read from 0600 files only: never from argv or the environment, never in logs or reprs.

A key file holds one hex private key (0x optional). Two keys per chain: the executor key owns the
contract and signs transactions; the searcher-identity key only signs X-Flashbots-Signature headers,
so builders' reputation tracking never needs the key that holds funds.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any, NoReturn

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak


class KeyFileError(ValueError):
    """A key file that must not be used; the message names the file, never its content."""


def _refuse(*_: object) -> NoReturn:
    raise TypeError("a Signer holds a private key: it is not copied, pickled or serialized")


class Signer:
    """One private key. Its repr, str and any error it raises carry the address only."""

    __slots__ = ("__account", "address")

    def __init__(self, private_key: bytes) -> None:
        self.__account = Account.from_key(private_key)
        self.address: str = self.__account.address

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise KeyFileError(f"key file {path}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"key file {path}: not a regular file")
        if mode & 0o077:
            raise KeyFileError(f"key file {path}: mode {stat.S_IMODE(mode):04o} lets others read it; chmod 600 it")
        text = path.read_text(errors="replace").strip()
        hex_key = text[2:] if text.lower().startswith("0x") else text
        try:
            key = bytes.fromhex(hex_key)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise KeyFileError(f"key file {path}: not a 32-byte hex private key")
        try:
            return cls(key)
        except Exception:  # eth_keys' message could echo the key: replace it
            raise KeyFileError(f"key file {path}: not a valid secp256k1 private key") from None

    def sign_transaction(self, tx: dict[str, Any]) -> tuple[bytes, str]:
        """(raw signed transaction, 0x hash)."""
        signed = self.__account.sign_transaction(tx)
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()

    def sign_body(self, body: bytes) -> str:
        """The X-Flashbots-Signature header value: address:EIP-191 signature of the 0x-hex keccak of the body."""
        digest = "0x" + keccak(body).hex()
        signature = self.__account.sign_message(encode_defunct(text=digest)).signature
        return f"{self.address}:0x{bytes(signature).hex()}"

    def __repr__(self) -> str:
        return f"Signer(address={self.address}, key=<redacted>)"

    __str__ = __repr__
    __reduce__ = __reduce_ex__ = __copy__ = __deepcopy__ = __getstate__ = _refuse


def write_new_key_file(path: Path) -> str:
    """Create `path` (which must not exist) with a fresh key, mode 0600 from the start; returns its address."""
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("0x" + key.hex() + "\n")
    return Signer(key).address
