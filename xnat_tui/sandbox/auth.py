"""Authentication (xnat-api.md §2): Basic on every call, HTTP sessions, alias tokens.

API (stable):

* ``SessionManager(timeout_seconds)`` — in-memory servlet sessions (a restart logs
  everyone out, like Tomcat): ``create(login)``, ``lookup(id)``, ``invalidate(id)``,
  ``expire_all()``, ``timeout`` (seconds, settable).
* ``auth_middleware`` — sets ``request[keys.USER]`` (``permissions.User``) on every
  request that carries valid credentials; data paths (``/data``, ``/REST``,
  ``/xapi``, ``/fs``) without them answer 401 + ``WWW-Authenticate: Basic
  realm="XNAT"``; bad credentials answer 401 with XNAT's login-failure text (no
  ``WWW-Authenticate``). Authenticated responses carry ``JSESSIONID`` (new sessions)
  and ``SESSION_EXPIRATION_TIME=<lastAccessMillis>,<maxInactiveMillis>`` cookies.
  Handlers may set ``request[LOGOUT] = True`` (logout).
* ``PUBLIC_PATHS`` — data paths that need no credentials.
* ``setup(app)`` — the login routes: ``/data/JSESSION``, ``/data/auth``,
  ``/data/services/auth``, ``/data/services/tokens/...``, ``/app/action/LogoutUser``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from aiohttp import web

from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.keys import LOGOUT, SESSION, SESSIONS, SETTINGS, STORE, USER
from xnat_tui.sandbox.permissions import User, load_user, request_user
from xnat_tui.sandbox.routing import add_route
from xnat_tui.sandbox.store import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DATA_PREFIXES = ("/data", "/REST", "/xapi", "/fs")
PUBLIC_PATHS = frozenset({"/data/services/auth", "/REST/services/auth"})

LOGIN_FAILURE = (
    "Your login attempt failed because the username and password combination you provided "
    "was invalid or your user already has the maximum number of user sessions open. After 20 "
    "failed login attempts, your user account will be locked. If you believe your account is "
    "currently locked, you can:<ul><li>Unlock it by resetting your password</li><li>Wait one "
    "hour for it to unlock automatically</li></ul>"
)


@dataclass
class HttpSession:
    id: str
    login: str
    created: float
    last_access: float


class SessionManager:
    def __init__(self, timeout: float = 900.0) -> None:
        self.timeout = timeout
        self._sessions: dict[str, HttpSession] = {}
        self._swept = time.time()

    def create(self, login: str) -> HttpSession:
        sid = secrets.token_hex(16).upper()
        now = time.time()
        self._sweep(now)
        session = HttpSession(sid, login, now, now)
        self._sessions[sid] = session
        return session

    def _sweep(self, now: float) -> None:
        """Forget idle sessions now and then: a client sending Basic auth on every call
        (curl, monitoring) makes a session per request that is never looked up again."""
        if now - self._swept < min(self.timeout, 60.0):
            return
        self._swept = now
        for sid in [k for k, v in self._sessions.items() if now - v.last_access > self.timeout]:
            del self._sessions[sid]

    def lookup(self, sid: str, *, touch: bool = True) -> HttpSession | None:
        """The live session, or None when unknown or idle longer than the timeout."""
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = time.time()
        if now - session.last_access > self.timeout:
            del self._sessions[sid]
            return None
        if touch:
            session.last_access = now
        return session

    def invalidate(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def expire_all(self) -> int:
        count = len(self._sessions)
        self._sessions.clear()
        return count

    def __len__(self) -> int:
        return len(self._sessions)


def is_data_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DATA_PREFIXES)


def _challenge(site_id: str) -> web.HTTPException:
    return xnat_error(
        401,
        "Full authentication is required to access this resource",
        headers={"WWW-Authenticate": f'Basic realm="{site_id}"'},
    )


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from a Basic header; ``provider/user`` loses its provider."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ("", "")
    user, sep, password = decoded.partition(":")
    if not sep:
        return ("", "")
    if "/" in user:
        user = user.split("/", 1)[1]
    return user, password


def authenticate(store: Store, user: str, password: str) -> User | None:
    """Password login, or an alias token's alias/secret used as credentials."""
    login: str | None = None
    if user and store.check_password(user, password):
        login = user
    else:
        token = store.get_token(user) if user else None
        if (
            token is not None
            and token.enabled
            and not token.expired
            and secrets.compare_digest(token.secret, password)
        ):
            login = token.login
    return None if login is None else load_user(store, login)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    store = request.app[STORE]
    sessions = request.app[SESSIONS]
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization")
    creds = basic_credentials(header) if header else None
    session: HttpSession | None = None
    sid = request.cookies.get("JSESSIONID")
    if sid:
        session = sessions.lookup(sid)
    user: User | None = None
    if creds is not None:
        user = authenticate(store, *creds)
        if user is None:
            # XnatBasicAuthenticationFilter → sendError(401, msg); no challenge header.
            raise xnat_error(401, LOGIN_FAILURE)
        if session is not None and session.login != user.login:
            session = None
    elif session is not None:
        user = load_user(store, session.login)
        if user is None:
            sessions.invalidate(session.id)
            session = None
    request[USER] = user
    needs_auth = is_data_path(request.path) and request.path not in PUBLIC_PATHS
    if user is None:
        if needs_auth:
            raise _challenge(settings.site_id)
        return await handler(request)

    new_session = session is None
    if session is None:
        session = sessions.create(user.login)
    request[SESSION] = session
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _set_cookies(request, exc, session, new_session, sessions.timeout)
        raise
    _set_cookies(request, response, session, new_session, sessions.timeout)
    return response


def _set_cookies(
    request: web.Request,
    response: web.StreamResponse,
    session: HttpSession,
    new_session: bool,
    timeout: float,
) -> None:
    if response.prepared:
        return
    if request.get(LOGOUT):
        return
    if new_session:
        response.set_cookie("JSESSIONID", session.id, path="/", httponly=True)
    set_expiration_cookie(response, session, timeout)


def set_expiration_cookie(
    response: web.StreamResponse, session: HttpSession, timeout: float
) -> None:
    # Tomcat quotes the value because of the comma (xnatpy's parser expects the quotes);
    # written by hand because http.cookies would escape the comma as "\054".
    stamp = f"{int(session.last_access * 1000)},{int(timeout * 1000)}"
    response.headers.add("Set-Cookie", f'SESSION_EXPIRATION_TIME="{stamp}"; Path=/')


# ---- routes ------------------------------------------------------------------------


def _csrf_suffix(request: web.Request) -> str:
    if request.query.get("CSRF", "").lower() == "true":
        session = request.get(SESSION)
        token = session.id if session is not None else ""
        return f"; XNAT_CSRF={csrf_token(token)}"
    return ""


def csrf_token(session_id: str) -> str:
    """A stable per-session CSRF token (the sandbox never checks it, like XNAT for APIs)."""
    import hashlib

    return hashlib.sha256(("csrf:" + session_id).encode()).hexdigest()[:36]


async def jsession(request: web.Request) -> web.Response:
    request_user(request)
    session = request[SESSION]
    if request.method == "DELETE":
        request.app[SESSIONS].invalidate(session.id)
        request[LOGOUT] = True
        resp = web.Response(status=200)
        resp.del_cookie("JSESSIONID", path="/")
        return resp
    return web.Response(text=session.id + _csrf_suffix(request), content_type="text/plain")


async def auth_check(request: web.Request) -> web.Response:
    user = request_user(request)
    return web.Response(
        text=f"User '{user.login}' is logged in{_csrf_suffix(request)}", content_type="text/plain"
    )


async def services_auth(request: web.Request) -> web.Response:
    if request.method == "GET":
        raise xnat_error(405, "Method Not Allowed")
    body = await request.text()
    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    for key, value in request.query.items():
        fields.setdefault(key, value)
    username = fields.get("username", "")
    password = fields.get("password", "")
    if "/" in username:
        username = username.split("/", 1)[1]
    user = authenticate(request.app[STORE], username, password) if username else None
    if user is None:
        raise xnat_error(401, "Authentication failed.")
    sessions = request.app[SESSIONS]
    session = sessions.create(user.login)
    request[LOGOUT] = True  # the middleware must not add a second session
    resp = web.Response(text=session.id, content_type="text/plain")
    resp.set_cookie("JSESSIONID", session.id, path="/", httponly=True)
    set_expiration_cookie(resp, session, sessions.timeout)
    return resp


async def tokens(request: web.Request) -> web.Response:
    user = request_user(request)
    store = request.app[STORE]
    if user.guest:
        raise xnat_error(403, "The guest user can't request alias tokens")
    parts = [p for p in request.match_info.get("rest", "").split("/") if p]
    if not parts:
        raise xnat_error(400, "You must specify an operation.")
    op, args = parts[0], parts[1:]
    if op == "issue":
        login = user.login
        if len(args) == 2 and args[0] == "user":
            if not user.admin and args[1] != user.login:
                raise xnat_error(403, "Only site admins can issue tokens for other users.")
            if store.get_user(args[1]) is None:
                raise xnat_error(404, f"Can't find a user with the login {args[1]}")
            login = args[1]
        return web.json_response(store.issue_token(login).to_json())
    if op == "show":
        login = user.login
        if len(args) == 2 and args[0] == "user":
            if not user.admin and args[1] != user.login:
                raise xnat_error(403, "You can only view your own tokens.")
            login = args[1]
        return web.json_response([t.to_json() for t in store.tokens_of(login)])
    if op in ("validate", "invalidate"):
        if not args:
            raise xnat_error(400, "You must specify an alias token.")
        token = store.get_token(args[0])
        if token is None:
            raise xnat_error(404, f"Can't find an alias token with the alias {args[0]}")
        if op == "invalidate":
            if token.login != user.login and not user.admin:
                raise xnat_error(403, "You can't invalidate another user's alias token.")
            store.invalidate_token(token.alias)
            return web.json_response({"result": "OK"})
        secret = args[1] if len(args) > 1 else ""
        ok = token.enabled and not token.expired and secrets.compare_digest(token.secret, secret)
        return web.json_response({"valid": token.login if ok else None})
    raise xnat_error(400, f"Unknown operation: {op}")


async def logout_user(request: web.Request) -> web.Response:
    """The web UI's logout (the Desktop Client calls it): end the session, go home."""
    session = request.get(SESSION)
    if session is not None:
        request.app[SESSIONS].invalidate(session.id)
        request[LOGOUT] = True
    resp = web.Response(status=302, headers={"Location": "/"})
    resp.del_cookie("JSESSIONID", path="/")
    return resp


def setup(app: web.Application) -> None:
    app.router.add_get("/app/action/LogoutUser", logout_user)
    for method in ("GET", "POST", "DELETE"):
        add_route(app, method, "/JSESSION", jsession)
    add_route(app, "GET", "/auth", auth_check)
    for method in ("GET", "POST", "PUT"):
        add_route(app, method, "/services/auth", services_auth)
    add_route(app, "GET", "/services/tokens/{rest:.*}", tokens)
