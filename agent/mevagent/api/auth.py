"""Bearer-token auth on every mutating call. The token comes from a 0600 file; it is compared in constant
time and never appears in a log line, a repr or an error."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from mevagent.config import read_secret

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Token:
    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if len(value) < 16:
            raise ValueError("the API token must be at least 16 bytes")
        self._value = value

    @classmethod
    def from_file(cls, path: Path) -> Token:
        return cls(read_secret(path))

    def matches(self, presented: bytes) -> bool:
        return hmac.compare_digest(presented, self._value)

    def __repr__(self) -> str:
        return "Token(<redacted>)"

    __str__ = __repr__


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_auth(
    token: Token, unauthorized: Callable[[str], web.Response]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in SAFE_METHODS:
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.matches(presented.strip().encode()):
                return unauthorized("a valid bearer token is required for this call")
        return await handler(request)

    return middleware
