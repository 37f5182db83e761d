"""Accounts the simulator holds from its start (`solana-standin --accounts FILE`): the devnet's pool world.

The file is YAML: `accounts: {<address>: {owner, lamports, data (base64)}}`. A real validator starts from a
snapshot of the chain; this SIMULATOR starts from these accounts, so a devnet agent has pools to read
(docs/solana.md). Nothing else writes state on the devnet: the cheat methods stay off there.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from solders.account import Account
from solders.pubkey import Pubkey


def _pubkey(value: str) -> str:
    Pubkey.from_string(value)  # ValueError on anything that is not a 32-byte base58 key
    return value


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from None
    return value


Key = Annotated[str, AfterValidator(_pubkey)]


class SeedAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: Key
    lamports: Annotated[int, Field(gt=0, lt=2**64)]
    data: Annotated[str, AfterValidator(_base64)] = ""


class SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: dict[Key, SeedAccount]


def load(path: str | Path) -> dict[Pubkey, Account]:
    """The file's accounts, checked (ValueError naming the field on anything malformed)."""
    seed = SeedFile.model_validate(yaml.safe_load(Path(path).read_text()))
    return {
        Pubkey.from_string(key): Account(a.lamports, base64.b64decode(a.data), Pubkey.from_string(a.owner))
        for key, a in seed.accounts.items()
    }
