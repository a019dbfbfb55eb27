"""A tiny XNAT look-alike for transport tests: sessions, expiry, flaky routes, uploads.

The real sandbox covers XNAT semantics; this one isolates the client's plumbing (re-login
races, streaming bodies, retries) with counters a test can assert on.
"""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

PASSWORDS = {"alice": "alice"}


@dataclass
class FakeState:
    sessions: set[str] = field(default_factory=set)
    counter: Counter[str] = field(default_factory=Counter)
    flaky_left: int = 0
    uploads: list[int] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    basic_requests: int = 0
    proxy_auth: str = ""
    ttl_ms: int = 900_000

    def expire_all(self) -> None:
        self.sessions.clear()


STATE = web.AppKey("state", FakeState)


def _basic_user(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user if PASSWORDS.get(user) == password else None


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="<html><body><p><b>Message</b> Login attempt failed.</p></body></html>",
        content_type="text/html",
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    state = request.app[STATE]
    state.counter[f"{request.method} {request.path}"] += 1
    state.proxy_auth = request.headers.get("Proxy-Authorization", state.proxy_auth)
    if request.path.startswith("/fake/"):
        return await handler(request)
    user = _basic_user(request)
    if "Authorization" in request.headers:
        state.basic_requests += 1
        if user is None:
            return _unauthorized()
    elif request.cookies.get("JSESSIONID") not in state.sessions:
        if request.can_read_body:
            await request.read()
        return _unauthorized()
    response = await handler(request)
    if user is not None and request.cookies.get("JSESSIONID") not in state.sessions:
        sid = f"SID{next(state.ids):04d}"
        state.sessions.add(sid)
        response.set_cookie("JSESSIONID", sid, path="/", httponly=True)
    response.set_cookie("SESSION_EXPIRATION_TIME", f"1700000000000,{state.ttl_ms}", path="/")
    return response


async def auth(request: web.Request) -> web.Response:
    return web.Response(text=f"User '{_basic_user(request) or 'alice'}' is logged in")


async def logout(request: web.Request) -> web.Response:
    request.app[STATE].sessions.discard(request.cookies.get("JSESSIONID", ""))
    return web.Response(text="")


async def items(request: web.Request) -> web.Response:
    return web.json_response({"ResultSet": {"Result": [{"ID": "P1", "name": "Pilot"}]}})


async def flaky(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.flaky_left > 0:
        state.flaky_left -= 1
        return web.Response(status=503, text="Service Unavailable")
    return web.json_response({"ResultSet": {"Result": []}})


async def upload(request: web.Request) -> web.Response:
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
    request.app[STATE].uploads.append(total)
    return web.Response(
        text="/data/prearchive/projects/P1/20240101_000000000/S1\r\n",
        content_type="text/uri-list",
    )


async def forbidden(request: web.Request) -> web.Response:
    raise web.HTTPForbidden(text="Unable to modify session data for destination project.")


async def commit(request: web.Request) -> web.Response:
    if request.query.get("action") != "commit":
        return web.Response(status=400, text="No action parameter was specified")
    return web.Response(status=301, text="/data/archive/projects/P1/subjects/S1/experiments/E1")


def make_app() -> tuple[web.Application, FakeState]:
    app = web.Application(middlewares=[auth_middleware])
    state = FakeState()
    app[STATE] = state
    app.router.add_get("/data/auth", auth)
    app.router.add_delete("/data/JSESSION", logout)
    app.router.add_get("/data/projects", items)
    app.router.add_get("/data/flaky", flaky)
    app.router.add_post("/data/services/import", upload)
    app.router.add_post("/data/forbidden", forbidden)
    app.router.add_post("/data/prearchive/projects/P1/20240101_000000000/S1", commit)
    return app, state
