"""Dashboard sessions: an operator token exchanged once for a session cookie, and CSRF on every mutation.

The browser never keeps the operator token: `POST /dashboard/login` checks it (the same SHA-256 list as
the bearer API) and answers with a cookie that is HttpOnly (no script reads it), Secure (TLS only) and
SameSite=Strict (no other site's page makes the browser send it), plus a CSRF token the page keeps in
memory and sends as `X-CSRF-Token` on every POST. A POST carried by the cookie without that header, with
a wrong one, or from another origin is refused (403) before any handler runs.

Sessions live in the control plane's PostgreSQL (`dashboard_sessions`), so a restart keeps operators
logged in and every control plane on the same database knows them. A row holds the SHA-256 of the cookie
(never the cookie), the operator's name and token hash at login (a rotated token or a removed operator
ends its sessions), and the expiry (the database's clock: one clock for every control plane). The CSRF
token is an HMAC of the cookie, so it is stored nowhere. Logout and expiry delete the row: every control
plane refuses the cookie from its next request on; an open live stream re-checks its session every
ALIVE_CHECK_S.

Every response of the dashboard listener carries a strict Content-Security-Policy (scripts, styles,
fonts, images and connections from this host only; no inline script or style element, no frames).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from mevcontrol.config import OperatorConfig

COOKIE = "mevcontrol_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 12 * 3600.0  # a trading day; then the operator logs in again
MAX_SESSIONS = 1000  # bounded table: the oldest session goes first
ALIVE_CHECK_S = 5.0  # an open live stream re-checks its session this often (logout elsewhere ends it)
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


@dataclass(frozen=True, slots=True)
class Session:
    operator: OperatorConfig
    csrf: str
    expires: float  # unix seconds (the database's clock)
    key: str  # SHA-256 of the cookie: the row's key


def _key(session_id: str) -> str:
    # Kept by hash: the table (a dump, a backup, a replica) holds no cookie a browser could send.
    return hashlib.sha256(session_id.encode()).hexdigest()


def _csrf(session_id: str) -> str:
    # Derived from the cookie: the page gets it from the login or GET /dashboard/session, the table has none.
    return hmac.new(session_id.encode(), b"mevcontrol dashboard csrf", hashlib.sha256).hexdigest()


class Sessions:
    """The sessions of every control plane on this database (the `dashboard_sessions` table)."""

    def __init__(
        self, pool: asyncpg.Pool, operators: Sequence[OperatorConfig], *, ttl_s: float = SESSION_TTL_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:  # fmt: skip
        self.pool = pool
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._operators = {o.name: o for o in operators}

    async def open(self, operator: OperatorConfig) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        key = _key(session_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM dashboard_sessions WHERE expires_at < now()")
            expires = await conn.fetchval(
                """INSERT INTO dashboard_sessions (session_sha256, operator, operator_token_sha256, expires_at)
                   VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at""",
                key, operator.name, operator.token_sha256, self.ttl_s,
            )  # fmt: skip
            # Bounded: beyond max_sessions the oldest go first.
            await conn.execute(
                """DELETE FROM dashboard_sessions WHERE session_sha256 IN (
                     SELECT session_sha256 FROM dashboard_sessions ORDER BY created_at DESC, session_sha256
                     OFFSET $1)""",
                self.max_sessions,
            )
        return session_id, Session(operator, _csrf(session_id), expires.timestamp(), key)

    async def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        key = _key(session_id)
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT operator, operator_token_sha256, expires_at FROM dashboard_sessions
                   WHERE session_sha256 = $1 AND expires_at >= now()""",
                key,
            )
        if row is None:
            return None
        operator = self._operators.get(row["operator"])
        if operator is None or not hmac.compare_digest(operator.token_sha256, row["operator_token_sha256"]):
            return None  # the operator is gone from control.yml, or has a new token
        return Session(operator, _csrf(session_id), row["expires_at"].timestamp(), key)

    async def close(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 128:
            async with self.pool.acquire() as conn:
                await conn.execute("DELETE FROM dashboard_sessions WHERE session_sha256 = $1", _key(session_id))

    async def alive(self, session: Session) -> bool:
        """Not logged out nor expired (on any control plane)."""
        async with self.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT 1 FROM dashboard_sessions WHERE session_sha256 = $1 AND expires_at >= now()", session.key
                )
            )


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
            session = await sessions.get(request.cookies.get(COOKIE))
            if session is None or not csrf_valid(request, session):
                return web.json_response(
                    {"error": "logout: no session, or no CSRF token", "fields": [CSRF_HEADER]}, status=403
                )
            request[PUBLIC_KEY] = True
        elif "Authorization" not in request.headers:
            session = await sessions.get(request.cookies.get(COOKIE))
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
    # Assets asked by their content hash (the page's `?v=`) are kept for good; others revalidate (Last-Modified);
    # everything else holds fleet data: never cached.
    static = request.path.startswith("/dashboard/static/")
    kept = static and "v" in request.query and response.status == 200
    response.headers.setdefault(
        "Cache-Control", "public, max-age=31536000, immutable" if kept else "no-cache" if static else "no-store"
    )
