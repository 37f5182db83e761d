"""Dashboard sessions: an operator token exchanged once for a session cookie, and CSRF on every mutation.

The browser never keeps the operator token: `POST /dashboard/login` checks it (the same SHA-256 list as
the bearer API) and answers with a cookie that is HttpOnly (no script reads it), Secure (TLS only) and
SameSite=Strict (no other site's page makes the browser send it), plus a CSRF token the page keeps in
memory and sends as `X-CSRF-Token` on every POST. A POST carried by the cookie without that header, with
a wrong one, or from another origin is refused (403) before any handler runs. Sessions live in the
control plane's memory: a restart logs everyone out (the operator logs in again with the token file).

Every response of the dashboard listener carries a strict Content-Security-Policy (scripts, styles,
fonts, images and connections from this host only; no inline script or style element, no frames).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from mevcontrol.config import OperatorConfig

COOKIE = "mevcontrol_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 12 * 3600.0  # a trading day; then the operator logs in again
MAX_SESSIONS = 1000  # bounded memory: the oldest session goes first
PUBLIC_KEY = "dashboard_public"  # request key: the guard lets this request through without an operator
SESSION_KEY = "dashboard_session"
LOGOUT = "/dashboard/logout"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


@dataclass(slots=True)
class Session:
    operator: OperatorConfig
    csrf: str
    expires: float  # time.monotonic()
    created: float = field(default_factory=time.time)


def _key(session_id: str) -> str:
    # Kept by hash: a memory dump of the control plane shows no usable cookie.
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    def __init__(self, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._by_key: dict[str, Session] = {}

    def open(self, operator: OperatorConfig) -> tuple[str, Session]:
        self._expire()
        while len(self._by_key) >= MAX_SESSIONS:
            self._by_key.pop(next(iter(self._by_key)))
        session_id = secrets.token_urlsafe(32)
        session = Session(operator, secrets.token_urlsafe(32), time.monotonic() + self.ttl_s)
        self._by_key[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        session = self._by_key.get(_key(session_id))
        if session is None or session.expires < time.monotonic():
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_key.pop(_key(session_id), None)

    def alive(self, session: Session) -> bool:
        return any(s is session for s in self._by_key.values()) and session.expires >= time.monotonic()

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._by_key.items() if s.expires < now]:
            del self._by_key[key]


def same_origin(request: web.Request) -> bool:
    """An `Origin` header, when the browser sends one, names this very host and scheme."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-site request (those always carry Origin on POST)
    return origin == f"{request.scheme}://{request.host}"


def csrf_valid(request: web.Request, session: Session) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(sent) and hmac.compare_digest(sent, session.csrf) and same_origin(request)


def set_cookie(response: web.StreamResponse, session_id: str, ttl_s: float) -> None:
    response.set_cookie(COOKIE, session_id, max_age=int(ttl_s), path="/", secure=True, httponly=True, samesite="Strict")


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_middleware(
    sessions: Sessions, public: set[tuple[str, str]]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Before the API's guard: a cookie session becomes the request's operator (POSTs only with CSRF)."""

    @web.middleware
    async def dashboard_session(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        asset = request.method in ("GET", "HEAD") and path.startswith("/dashboard/static")
        if asset or (request.method, path) in public:
            request[PUBLIC_KEY] = True
        elif (request.method, path) == ("POST", LOGOUT):
            # Anyone logged in may end their session, a viewer too (the guard refuses a viewer's POSTs).
            session = sessions.get(request.cookies.get(COOKIE))
            if session is None or not csrf_valid(request, session):
                return web.json_response(
                    {"error": "logout: no session, or no CSRF token", "fields": [CSRF_HEADER]}, status=403
                )
            request[PUBLIC_KEY] = True
        elif "Authorization" not in request.headers:
            session = sessions.get(request.cookies.get(COOKIE))
            if session is not None:
                if request.method not in ("GET", "HEAD") and not csrf_valid(request, session):
                    return web.json_response(
                        {"error": f"CSRF: a POST from the dashboard needs its {CSRF_HEADER} header and this origin",
                         "fields": [CSRF_HEADER]},
                        status=403,
                    )  # fmt: skip
                request["operator"] = session.operator
                request[SESSION_KEY] = session
        return await handler(request)

    return dashboard_session


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer of the dashboard listener, streams and errors included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    # Assets revalidate (Last-Modified); everything else holds fleet data: never cached.
    static = request.path.startswith("/dashboard/static/")
    response.headers.setdefault("Cache-Control", "no-cache" if static else "no-store")
