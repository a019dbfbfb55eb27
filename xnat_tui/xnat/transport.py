"""HTTP plumbing: one aiohttp session per server, login, cookie reuse, re-login, errors.

Login is ``GET /data/auth`` with Basic credentials (what the Desktop Client does); the
server answers with a JSESSIONID cookie that every later request carries instead of the
password (Basic auth costs the server a password hash per request). When the session
expires mid-batch the server answers 401; the request is then sent again once after a
single re-login shared by every request that saw the same expiry.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp.payload import Payload
from multidict import CIMultiDictProxy
from yarl import URL

from xnat_tui import __version__
from xnat_tui.xnat.credentials import Credentials, proxy_for, refuse_cleartext, ssl_context
from xnat_tui.xnat.errors import (
    AuthenticationError,
    ConnectionFailed,
    ErrorContext,
    ProtocolError,
    SessionExpired,
    SessionRenewed,
    TLSError,
    UsageError,
    XnatError,
    error_for_status,
    extract_server_message,
)

USER_AGENT = f"xnat-tui/{__version__} (aiohttp)"
ParamValue = str | int | bool
Params = Mapping[str, ParamValue | None] | Sequence[tuple[str, ParamValue | None]]
# A body the client can send twice (bytes, or a factory making a fresh stream) or once.
Body = bytes | AsyncIterable[bytes] | Callable[[], AsyncIterable[bytes]] | Payload

_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Reply:
    status: int
    text: str
    headers: CIMultiDictProxy[str]
    url: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            ctype = self.headers.get("Content-Type", "?")
            raise ProtocolError(
                f"Expected JSON from {self.url} but got {ctype}: {self.text[:120]!r}",
                status=self.status,
                url=self.url,
            ) from None

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class _GuardedStream:
    """Remembers an exception raised by the caller's stream (a vanished source file).

    aiohttp turns it into a generic connection error; the caller must see the original,
    because a missing file is not a network problem and must not be retried blindly.
    """

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self.source = source
        self.error: BaseException | None = None
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.source:
                self.sent += len(chunk)
                yield chunk
        except Exception as exc:
            self.error = exc
            raise


async def gather_or_cancel(*aws: Awaitable[Any]) -> list[Any]:
    """Like ``asyncio.gather`` but the first failure cancels (and awaits) the others.

    Plain gather leaves the siblings running: they would outlive the ``async with`` of
    the client and, after it closed its HTTP session, open a new one that is never
    closed ("Unclosed client session" at exit).
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _encode_params(params: Params | None) -> list[tuple[str, str]]:
    if not params:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        else:
            out.append((key, str(value)))
    return out


def _session_ttl(headers: CIMultiDictProxy[str]) -> float | None:
    """``SESSION_EXPIRATION_TIME=<epochMillis>,<maxInactiveMillis>`` → seconds."""
    for raw in headers.getall("Set-Cookie", []):
        name, _, rest = raw.partition("=")
        if name.strip() != "SESSION_EXPIRATION_TIME":
            continue
        # Tomcat sends it quoted; Python's cookie writer escapes the comma as \054.
        value = rest.split(";", 1)[0].strip().strip('"').replace("\\054", ",")
        parts = value.split(",")
        if len(parts) == 2:
            try:
                return max(0.0, int(parts[1]) / 1000.0)
            except ValueError:
                return None
    return None


class XnatTransport:
    """Owns the aiohttp session. Use as ``async with XnatClient(creds) as client``."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        connect_timeout: float = 30.0,
        read_timeout: float = 300.0,
        get_retries: int = 2,
        retry_delay: float = 0.25,
        connection_limit: int = 16,
        renew_margin: float = 60.0,
    ) -> None:
        self.credentials = credentials
        self.server = credentials.server.rstrip("/")
        self.user = credentials.user
        # The name the server reports after login (differs from ``user`` for tokens).
        self.username = "" if credentials.is_token else credentials.user
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._get_retries = get_retries
        self._retry_delay = retry_delay
        self._limit = connection_limit
        self._renew_margin = renew_margin
        # Before anything can be sent: no password over plain HTTP beyond this machine.
        refuse_cleartext(self.server, allow_http=credentials.allow_http, user=self.user)
        self._ssl = ssl_context(credentials.verify_tls, credentials.ca_bundle)
        self._proxy = proxy_for(self.server)
        self._proxy_headers: dict[str, str] = {}
        if self._proxy:
            proxy_url = URL(self._proxy)
            if proxy_url.user:
                self._proxy_headers["Proxy-Authorization"] = aiohttp.encode_basic_auth(
                    proxy_url.user, proxy_url.password or ""
                )
                self._proxy = str(proxy_url.with_user(None))
        self._session: aiohttp.ClientSession | None = None
        self._login_lock = asyncio.Lock()
        self._generation = 0  # bumped by every successful login
        self._basic_always = False  # server gave no session cookie: send Basic each time
        self._ttl: float | None = None
        self._last_ok = 0.0
        self.login_message = ""
        self.relogins = 0

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        try:
            await self.login()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Logging out frees the server-side session (each login creates one). Skipped when
        # the network is the problem or the task is being cancelled: it would only wait.
        if exc_type is None or (
            issubclass(exc_type, Exception) and not issubclass(exc_type, ConnectionFailed)
        ):
            await self.logout()
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # Cookies on IP hosts (127.0.0.1, intranet servers) are refused by default.
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl),
                headers={"User-Agent": USER_AGENT},
                # Proxies are resolved by proxy_for(); trust_env would also add ~/.netrc
                # Basic auth to every request, defeating the session cookie.
                trust_env=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self._connect_timeout, sock_read=self._read_timeout
                ),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    @property
    def logged_in(self) -> bool:
        return self._generation > 0

    def _basic(self) -> str:
        """The ``Authorization`` header value for the stored credentials."""
        return aiohttp.encode_basic_auth(self.credentials.user, self.credentials.password)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.server + (path if path.startswith("/") else "/" + path)

    # ---------------------------------------------------------------- login

    async def login(self) -> str:
        """Log in (again); returns the server's greeting, e.g. ``User 'alice' is logged in``."""
        async with self._login_lock:
            await self._login_locked(renewal=False)
        return self.login_message

    async def _login_locked(self, *, renewal: bool) -> None:
        http = self._http()
        # An expired cookie sent along with Basic credentials only confuses some proxies.
        http.cookie_jar.clear()
        ctx = ErrorContext(action=f"log in to {self.server}", user=self.user)
        reply = await self._send_once("GET", "/data/auth", ctx, auth=self._basic())
        if reply.status == 404:
            # Very old servers lack /data/auth; /data/JSESSION logs in just as well.
            reply = await self._send_once("GET", "/data/JSESSION", ctx, auth=self._basic())
        if reply.status in _REDIRECTS:
            target = reply.location
            hint = (
                f"Use {target.split('/data/')[0]} as the server URL."
                if "/data/" in target
                else "Check the server URL: it should be the XNAT root, not a web page."
            )
            raise UsageError(
                f"{self.server} redirected the login to {target or 'another page'}.", hint=hint
            )
        if reply.status == 401:
            message = extract_server_message(reply.text, reply.headers.get("Content-Type", ""))
            cls = SessionExpired if renewal else AuthenticationError
            what = "alias token" if self.credentials.is_token else "user name or password"
            prefix = (
                "The session expired and logging in again failed"
                if renewal
                else (f"Login to {self.server} as {self.user} failed")
            )
            raise cls(
                f"{prefix}: the server rejected the {what}"
                + (f' ("{message}")' if message else "."),
                status=401,
                server_message=message,
                method="GET",
                url=self.url("/data/auth"),
            )
        if reply.status >= 400:
            raise error_for_status(
                reply.status,
                extract_server_message(reply.text, reply.headers.get("Content-Type", "")),
                ctx,
                method="GET",
                url=self.url("/data/auth"),
            )
        self.login_message = reply.text.strip()
        if "'" in self.login_message:
            self.username = self.login_message.split("'")[1] or self.username
        if not self.username:
            self.username = self.user
        if not self._has_session_cookie():
            # Some deployments only hand out the session id in the body of /data/JSESSION.
            sid = await self._send_once("GET", "/data/JSESSION", ctx, auth=self._basic())
            token = sid.text.strip()
            if sid.status == 200 and token and " " not in token and len(token) < 200:
                http.cookie_jar.update_cookies({"JSESSIONID": token}, URL(self.server))
        self._basic_always = not self._has_session_cookie()
        self._generation += 1
        if renewal:
            self.relogins += 1

    def _has_session_cookie(self) -> bool:
        jar = self._http().cookie_jar
        return "JSESSIONID" in jar.filter_cookies(URL(self.server + "/data/"))

    async def _relogin(self, seen_generation: int) -> None:
        async with self._login_lock:
            if self._generation != seen_generation:
                return  # another request renewed the session meanwhile
            await self._login_locked(renewal=True)

    async def ensure_session(self, margin: float | None = None) -> None:
        """Renew the session now if it would expire within ``margin`` seconds.

        Called before a request whose body can be sent only once, so that a session
        timing out during a long scan of the next series never costs a resend.
        """
        if not self.logged_in:
            await self.login()
            return
        if self._ttl is None or self._basic_always:
            return
        idle = time.monotonic() - self._last_ok
        if idle > self._ttl - (self._renew_margin if margin is None else margin):
            await self._relogin(self._generation)

    async def logout(self) -> None:
        """End the server session (best effort, a few seconds at most)."""
        if self.logged_in and self._session is not None and not self._session.closed:
            ctx = ErrorContext(action="log out", user=self.user)
            quick = aiohttp.ClientTimeout(total=3)
            try:
                await self._send_once("DELETE", "/data/JSESSION", ctx, http_timeout=quick)
            except XnatError:
                pass  # the session dies on its own after the server's idle timeout
        self._generation = 0

    # ---------------------------------------------------------------- requests

    async def _send_once(
        self,
        method: str,
        path: str,
        ctx: ErrorContext,
        *,
        params: list[tuple[str, str]] | None = None,
        data: Any = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: str | None = None,
        http_timeout: aiohttp.ClientTimeout | None = None,
    ) -> Reply:
        """One HTTP exchange; network failures become typed errors, statuses are returned."""
        url = self.url(path)
        if url.startswith("http://"):
            # Also for absolute URLs a server handed back (they need not be self.server).
            refuse_cleartext(url, allow_http=self.credentials.allow_http, user=self.user)
        kwargs: dict[str, Any] = {
            "params": params or None,
            "headers": dict(headers or {}),
            "allow_redirects": False,
            "proxy": self._proxy,
        }
        if self._proxy_headers:
            # aiohttp sends proxy_headers only on CONNECT (https); a plain-http request
            # through a proxy must carry Proxy-Authorization itself.
            if url.startswith("https://"):
                kwargs["proxy_headers"] = self._proxy_headers
            else:
                kwargs["headers"].update(self._proxy_headers)
        if auth is None and self._basic_always:
            auth = self._basic()
        if auth is not None:
            kwargs["headers"]["Authorization"] = auth
        if data is not None:
            kwargs["data"] = data
        if json_body is not None:
            kwargs["json"] = json_body
        if http_timeout is not None:
            kwargs["timeout"] = http_timeout
        host = URL(url).host or self.server
        try:
            async with self._http().request(method, url, **kwargs) as resp:
                text = await resp.text(errors="replace")
                ttl = _session_ttl(resp.headers)
                if ttl is not None:
                    self._ttl = ttl
                if resp.status < 400 and resp.status != 401:
                    self._last_ok = time.monotonic()
                return Reply(resp.status, text, resp.headers, str(resp.url))
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TLSError(
                f"The TLS certificate of {host} could not be verified: {exc.certificate_error}",
                method=method,
                url=url,
            ) from exc
        except (aiohttp.ClientConnectorSSLError, aiohttp.ClientSSLError) as exc:
            raise TLSError(
                f"TLS handshake with {host} failed: {exc}", method=method, url=url
            ) from exc
        except aiohttp.ClientConnectorDNSError as exc:
            raise ConnectionFailed(
                f"Cannot resolve the host name {host}.",
                hint="Check the server URL for typos and that DNS/VPN works from this machine.",
                method=method,
                url=url,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error)
            raise ConnectionFailed(
                f"Cannot connect to {exc.host}:{exc.port} ({reason}) to {ctx.action}.",
                method=method,
                url=url,
            ) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise ConnectionFailed(
                f"The connection to {host} dropped while trying to {ctx.action}: {exc}",
                method=method,
                url=url,
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise ConnectionFailed(
                f"The reply from {host} was cut off while trying to {ctx.action}: {exc}",
                method=method,
                url=url,
            ) from exc
        except TimeoutError as exc:
            raise ConnectionFailed(
                f"{host} did not answer in time while trying to {ctx.action}.",
                hint="The server may be overloaded; the request is retried automatically.",
                method=method,
                url=url,
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise UsageError(f"Invalid URL {url}: {exc}") from exc
        except aiohttp.ClientResponseError as exc:
            raise ProtocolError(
                f"{host} sent a malformed reply while trying to {ctx.action}: {exc.message}",
                method=method,
                url=url,
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(
                f"Request to {host} failed while trying to {ctx.action}: {exc}",
                method=method,
                url=url,
            ) from exc

    async def request(
        self,
        method: str,
        path: str,
        ctx: ErrorContext,
        *,
        params: Params | None = None,
        body: Body | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: Sequence[int] = (200,),
        http_timeout: aiohttp.ClientTimeout | None = None,
        retries: int | None = None,
    ) -> Reply:
        """Send with session reuse, one re-login on 401, and retries for idempotent GETs.

        Statuses in ``ok`` are returned; anything else raises the matching typed error.
        """
        if not self.logged_in:
            async with self._login_lock:
                # Concurrent first calls share one login.
                if not self.logged_in:
                    await self._login_locked(renewal=False)
        encoded = _encode_params(params)
        attempts = 1 + (
            (self._get_retries if retries is None else retries) if method in ("GET", "HEAD") else 0
        )
        for attempt in range(attempts):
            try:
                return await self._request_with_relogin(
                    method, path, ctx, encoded, body, json_body, headers, ok, http_timeout
                )
            except XnatError as exc:
                if not exc.retriable or attempt == attempts - 1:
                    raise
            delay = self._retry_delay * (2**attempt) * (0.5 + random.random())
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_with_relogin(
        self,
        method: str,
        path: str,
        ctx: ErrorContext,
        params: list[tuple[str, str]],
        body: Body | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        ok: Sequence[int],
        http_timeout: aiohttp.ClientTimeout | None,
    ) -> Reply:
        replayable = body is None or isinstance(body, bytes) or callable(body)
        if not replayable:
            await self.ensure_session()
        for attempt in (0, 1):
            generation = self._generation
            guard: _GuardedStream | None = None
            data: Any = body
            if callable(body) and not isinstance(body, Payload):
                guard = _GuardedStream(body())
                data = guard.__aiter__()
            elif body is not None and not isinstance(body, (bytes, Payload)):
                guard = _GuardedStream(body)
                data = guard.__aiter__()
            try:
                reply = await self._send_once(
                    method,
                    path,
                    ctx,
                    params=params,
                    data=data,
                    json_body=json_body,
                    headers=headers,
                    http_timeout=http_timeout,
                )
            except XnatError:
                if guard is not None and guard.error is not None:
                    raise guard.error from None
                raise
            if guard is not None and guard.error is not None:
                raise guard.error
            if reply.status != 401:
                break
            if attempt == 1:
                message = extract_server_message(reply.text, reply.headers.get("Content-Type", ""))
                raise SessionExpired(
                    f"Cannot {ctx.action}: the server still refuses the renewed session"
                    + (f' ("{message}")' if message else "."),
                    status=401,
                    server_message=message,
                    method=method,
                    url=self.url(path),
                )
            await self._relogin(generation)
            if not replayable:
                raise SessionRenewed(
                    f"The session expired while trying to {ctx.action}; it has been renewed.",
                    status=401,
                    method=method,
                    url=self.url(path),
                )
        if reply.status in ok:
            return reply
        message = extract_server_message(reply.text, reply.headers.get("Content-Type", ""))
        raise error_for_status(reply.status, message, ctx, method=method, url=self.url(path))

    # ---------------------------------------------------------------- helpers

    def context(
        self, action: str, *, project: str = "", permission: str = "", not_found: str = ""
    ) -> ErrorContext:
        return ErrorContext(
            action=action,
            user=self.username or self.user,
            project=project,
            permission=permission,
            not_found=not_found,
        )

    async def get_json(self, path: str, ctx: ErrorContext, params: Params | None = None) -> Any:
        merged = [*_encode_params(params), ("format", "json")]
        return (await self.request("GET", path, ctx, params=merged)).json()
