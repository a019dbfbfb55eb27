"""Deterministic fault injection for reliability tests and demos.

SPEC grammar (``--faults SPEC``, ``FaultInjector.configure(SPEC)``, or the admin
route): items separated by ``,`` or ``;``, each ``name`` or ``name=value``::

    error=STATUS:RATE     answer STATUS (e.g. 503) to a fraction RATE of requests;
                          repeatable (error=503:0.1,error=500:0.05)
    latency=DURATION      add DURATION before every request (200ms, 1.5s, 2)
    drop=RATE             read part of the request body, then abort the connection
                          (requests without a body are dropped before any answer)
    disk-full[=RATE]      answer requests that carry a body with Tomcat's 500
                          "No space left on device" (default rate 1)
    expire-sessions[=RATE]
                          without a rate: drop every HTTP session now (one-shot);
                          with a rate: each cookie-authenticated request finds its
                          session expired with that probability (→ 401)
    slow-import=DURATION  the import service waits DURATION after each chunk (at most
                          1 MiB) it unpacks, so an upload is "being inflated" for as
                          long as a test needs (stopping mid-import)
    cut[=RATE]            file and zip downloads send about half of their body, then
                          drop the connection (default rate 1)
    html[=RATE]           file and zip downloads answer 200 with an HTML login page
                          instead of the data (a proxy or SSO page; default rate 1)
    ranges                honour Range on single-file GETs (206 + Content-Range);
                          XNAT ignores Range, so does the sandbox without this switch
    only=PREFIX           apply the faults only to paths starting with PREFIX
                          (repeatable; e.g. only=/data/services/import)
    seed=N                seed of the random generator (default 0)

Rates are probabilities in [0, 1]. Decisions come from one ``random.Random(seed)``
consumed in request order, so the same request sequence meets the same faults.
``/sandbox/...`` admin routes are never faulted.

Admin route (loopback clients only, no credentials): ``GET /sandbox/faults`` →
``{"spec": ...}``; ``POST /sandbox/faults`` with ``{"spec": "..."}`` replaces the
configuration (``{"spec": ""}`` clears it; 400 on a bad spec);
``DELETE /sandbox/faults`` clears; ``POST /sandbox/expire-sessions`` drops all
sessions.

API: ``FaultInjector(spec=None)``, ``.configure(spec)``, ``.clear()``, ``.spec``,
``.expire_sessions()``,
``.stats`` (counts per fault kind), ``faults_middleware``, ``setup_admin(app)``,
``parse_spec(spec) -> FaultConfig`` (raises ``FaultSpecError``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.keys import FAULTS, SESSIONS

if TYPE_CHECKING:
    from xnat_tui.sandbox.auth import SessionManager

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DISK_FULL_MESSAGE = "java.io.IOException: No space left on device"


class FaultSpecError(ValueError):
    """The SPEC string cannot be parsed."""


@dataclass
class FaultConfig:
    errors: list[tuple[int, float]] = field(default_factory=list)
    latency: float = 0.0
    drop: float = 0.0
    disk_full: float = 0.0
    expire_rate: float = 0.0
    expire_now: bool = False
    slow_import: float = 0.0
    cut: float = 0.0
    html: float = 0.0
    ranges: bool = False
    only: list[str] = field(default_factory=list)
    seed: int = 0


def _rate(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"bad rate in {item!r}") from None
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"rate must be between 0 and 1 in {item!r}")
    return value


def _duration(text: str, item: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not match:
        raise FaultSpecError(f"bad duration in {item!r} (use e.g. 200ms or 1.5s)")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def parse_spec(spec: str | None) -> FaultConfig:
    config = FaultConfig()
    if not spec:
        return config
    for raw in re.split(r"[,;]", spec):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name == "error":
            status_text, colon, rate_text = value.partition(":")
            if not status_text.isdigit() or not 400 <= int(status_text) <= 599:
                raise FaultSpecError(f"error needs STATUS:RATE with a 4xx/5xx status: {item!r}")
            config.errors.append((int(status_text), _rate(rate_text, item) if colon else 1.0))
        elif name == "latency":
            config.latency = _duration(value, item)
        elif name == "drop":
            config.drop = _rate(value, item) if sep else 1.0
        elif name == "disk-full":
            config.disk_full = _rate(value, item) if sep else 1.0
        elif name == "expire-sessions":
            if sep:
                config.expire_rate = _rate(value, item)
            else:
                config.expire_now = True
        elif name == "slow-import":
            config.slow_import = _duration(value, item)
        elif name == "cut":
            config.cut = _rate(value, item) if sep else 1.0
        elif name == "html":
            config.html = _rate(value, item) if sep else 1.0
        elif name == "ranges":
            config.ranges = True
        elif name == "only":
            if not value.startswith("/"):
                raise FaultSpecError(f"only needs a path prefix starting with '/': {item!r}")
            config.only.append(value)
        elif name == "seed":
            try:
                config.seed = int(value)
            except ValueError:
                raise FaultSpecError(f"seed must be an integer: {item!r}") from None
        else:
            raise FaultSpecError(f"unknown fault {name!r}")
    return config


class FaultInjector:
    def __init__(self, spec: str | None = None) -> None:
        self.spec = ""
        self.config = FaultConfig()
        self.random = random.Random(0)
        self.stats: Counter[str] = Counter()
        self._pending_expiry = False
        self._sessions: SessionManager | None = None
        self.configure(spec)

    def bind_sessions(self, sessions: SessionManager) -> None:
        """Give the injector the server's sessions so ``expire-sessions`` acts at once."""
        self._sessions = sessions
        if self._pending_expiry:
            self.expire_sessions()

    def expire_sessions(self) -> int:
        """Log every HTTP session out now (also what ``expire-sessions`` does)."""
        if self._sessions is None:
            self._pending_expiry = True
            return 0
        self._pending_expiry = False
        self.stats["expire-sessions"] += 1
        return self._sessions.expire_all()

    def configure(self, spec: str | None) -> None:
        """Replace the configuration (FaultSpecError leaves the old one in place)."""
        config = parse_spec(spec)
        self.config = config
        self.spec = spec or ""
        self.random = random.Random(config.seed)
        self._pending_expiry = False
        if config.expire_now:
            self.expire_sessions()

    def clear(self) -> None:
        self.configure(None)

    @property
    def active(self) -> bool:
        c = self.config
        return bool(c.errors or c.latency or c.drop or c.disk_full or c.expire_rate)

    def applies_to(self, path: str) -> bool:
        if path.startswith("/sandbox/"):
            return False
        return not self.config.only or any(path.startswith(p) for p in self.config.only)

    def import_pause(self, path: str) -> float:
        """``slow-import``: seconds to wait per unpacked chunk of an upload to ``path``."""
        if not self.config.slow_import or not self.applies_to(path):
            return 0.0
        self.stats["slow-import"] += 1
        return self.config.slow_import

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate


async def _drop(request: web.Request) -> web.StreamResponse:
    # Consume part of the body so the client is mid-upload when the connection dies.
    if request.can_read_body:
        target = request.content_length // 2 if request.content_length else 64 * 1024
        read = 0
        while read < max(1, target):
            chunk = await request.content.read(min(65536, max(1, target - read)))
            if not chunk:
                break
            read += len(chunk)
    transport = request.transport
    if transport is not None:
        transport.abort()
    # The handler task is cancelled by aiohttp once the connection is gone.
    raise asyncio.CancelledError


async def _drain(request: web.Request) -> None:
    if request.can_read_body:
        while await request.content.read(65536):
            pass


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    faults = request.app[FAULTS]
    if not faults.active or not faults.applies_to(request.path):
        return await handler(request)
    config = faults.config
    if config.latency:
        faults.stats["latency"] += 1
        await asyncio.sleep(config.latency)
    if config.drop and faults.roll(config.drop):
        faults.stats["drop"] += 1
        return await _drop(request)
    for status, rate in config.errors:
        if faults.roll(rate):
            faults.stats[f"error-{status}"] += 1
            await _drain(request)
            raise xnat_error(status, f"Injected fault: HTTP {status}")
    if config.disk_full and request.can_read_body and faults.roll(config.disk_full):
        faults.stats["disk-full"] += 1
        await _drain(request)
        raise xnat_error(500, DISK_FULL_MESSAGE)
    if config.expire_rate and "JSESSIONID" in request.cookies and faults.roll(config.expire_rate):
        faults.stats["expire-sessions"] += 1
        request.app[SESSIONS].invalidate(request.cookies["JSESSIONID"])
    return await handler(request)


def _loopback_only(request: web.Request) -> None:
    remote = request.remote or ""
    try:
        ok = ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise xnat_error(403, "The sandbox admin routes answer loopback clients only.")


async def get_faults(request: web.Request) -> web.Response:
    _loopback_only(request)
    faults = request.app[FAULTS]
    return web.json_response({"spec": faults.spec, "stats": dict(faults.stats)})


async def post_faults(request: web.Request) -> web.Response:
    _loopback_only(request)
    try:
        body = await request.json()
    except ValueError:
        raise xnat_error(400, 'Body must be JSON: {"spec": "..."}') from None
    if not isinstance(body, dict) or not isinstance(body.get("spec", ""), str):
        raise xnat_error(400, 'Body must be JSON: {"spec": "..."}')
    faults = request.app[FAULTS]
    try:
        faults.configure(body.get("spec", ""))
    except FaultSpecError as exc:
        raise xnat_error(400, f"Bad fault spec: {exc}") from None
    return web.json_response({"spec": faults.spec})


async def delete_faults(request: web.Request) -> web.Response:
    _loopback_only(request)
    request.app[FAULTS].clear()
    return web.json_response({"spec": ""})


async def expire_sessions(request: web.Request) -> web.Response:
    _loopback_only(request)
    count = request.app[FAULTS].expire_sessions()
    return web.json_response({"expired": count})


def setup_admin(app: web.Application) -> None:
    app.router.add_get("/sandbox/faults", get_faults)
    app.router.add_post("/sandbox/faults", post_faults)
    app.router.add_delete("/sandbox/faults", delete_faults)
    app.router.add_post("/sandbox/expire-sessions", expire_sessions)
