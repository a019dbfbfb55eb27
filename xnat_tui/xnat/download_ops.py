"""Reading a server's archive for download and copy (xnat-api-2.md §A), typed.

* The listings a browser needs (projects, subjects, sessions, scans with file counts
  and sizes) come from :class:`~xnat_tui.xnat.client.XnatClient`; the file listing with
  MD5 ``digest`` is :func:`session_files` (one ``.../scans/{S}/files`` call per
  session) or :func:`resource_files` (one scan resource, what a catalog entry names).
* :func:`open_file` streams one file (``GET .../files/{path}``), asking for
  ``Range: bytes=N-`` when resuming; the reply says whether the server honoured it
  (206 with a matching ``Content-Range``) or restarted (200: XNAT ignores Range).
* :class:`Verifier` checks a body as it streams: an HTML or error page is never taken
  for data (content type, ``<!DOCTYPE``/``<html``, zip and DICOM magic), the size must
  match the listing, and the MD5 must match ``digest`` where XNAT has one.
* :func:`fetch_verified` does both for one file into memory (small files, a copy's
  source); :func:`parse_catalog` reads the "Catalog XML" of XNAT's Download Images page.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from yarl import URL

from xnat_tui.xnat import md5, tables
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.errors import (
    ConnectionFailed,
    ProtocolError,
    SessionExpired,
    TLSError,
    XnatError,
    error_for_status,
    extract_server_message,
)
from xnat_tui.xnat.models import RemoteFile, data_uri
from xnat_tui.xnat.transport import USER_AGENT

CHUNK = 1 << 20
READ_BUFFER = 4 << 20
_FILE_URI = re.compile(r"/scans/([^/]+)/resources/([^/]+)/files/(.+)$")
_SESSION_FILE_URI = re.compile(r"/experiments/[^/]+/resources/([^/]+)/files/(.+)$")


def _q(segment: str) -> str:
    return quote(segment, safe="")


@dataclass(frozen=True)
class ListedFile:
    """One file of a session as the file listing gives it.

    ``relpath`` is the path inside the resource (subfolders kept; from ``URI``, not
    ``Name``); ``digest`` XNAT's MD5 hex ('' when the catalog has none).
    """

    scan_id: str  # '' for a session-level resource
    resource: str  # the resource's label (the listing's ``collection``)
    relpath: str
    uri: str
    size: int | None
    digest: str = ""

    @classmethod
    def from_remote(cls, f: RemoteFile, *, scan_id: str = "", resource: str = "") -> ListedFile:
        path = f.uri.split("?", 1)[0]
        raw = _unencoded(path, f.name)
        decode = (lambda text: text) if raw else unquote
        match = _FILE_URI.search(path)
        relpath = f.name
        if match:
            scan_id = scan_id or unquote(match.group(1))
            relpath = decode(match.group(3))
        else:
            session_match = _SESSION_FILE_URI.search(path)
            if session_match:
                relpath = decode(session_match.group(2))
        return cls(
            scan_id=scan_id,
            resource=f.collection or resource,
            relpath=relpath,
            uri=data_uri(_request_path(f.uri, raw)),
            size=f.size,
            digest=f.digest.strip().lower(),
        )


def _unencoded(path: str, name: str) -> bool:
    """Whether a listing's URI holds the file's path as it is. XNAT joins it unencoded
    (a space, ``#`` or ``%`` as they are); a proxy or another server may encode it. The
    ``Name`` column, the bare name, tells them apart where they differ."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return last == name or unquote(last) != name


def _request_path(uri: str, raw: bool) -> str:
    """The URI as a request sends it: a raw one encoded whole (``%`` too), an encoded one
    only where a character may not stand in a path (and ``%XX`` kept)."""
    path, sep, query = uri.partition("?")
    if not _UNSAFE_IN_PATH.search(path):
        return uri  # the usual case: nothing to encode (quote costs ~5 µs a file)
    if raw:
        return quote(path, safe="/:@!$&'()*+,;=~") + sep + query
    return quote(path, safe="/:@!$&'()*+,;=~%") + sep + query


_UNSAFE_IN_PATH = re.compile(r"[^A-Za-z0-9/:@!$&'()*+,;=~._-]")


async def session_files(
    client: XnatClient, session_id: str, *, scans: str = "ALL", resource: str = "DICOM"
) -> list[ListedFile]:
    """Every file of the session's scans in ``resource`` (a label, comma list, or ALL)."""
    ctx = client.context(
        f"list the files of session {session_id}",
        not_found=f"session {session_id} does not exist or is not visible to you",
    )
    path = f"/data/experiments/{_q(session_id)}/scans/{_q(scans)}"
    if resource.upper() not in ("ALL", "*", ""):
        path += f"/resources/{quote(resource, safe=',')}"
    reply = await client.request(
        "GET", path + "/files", ctx, params={"format": "json"}, ok=(200, 404)
    )
    if reply.status == 404:
        return []  # no scan has this resource: nothing to download, not an error
    return [
        ListedFile.from_remote(tables.remote_file(r))
        for r in tables.rows(reply.json(), "the file listing")
    ]


async def resource_files(
    client: XnatClient, session_id: str, scan_id: str, resource: str
) -> list[ListedFile]:
    """The files of one scan resource, or of the session's own (``scan_id`` '')."""
    of = f"scan {scan_id} of session {session_id}" if scan_id else f"session {session_id}"
    ctx = client.context(f"list the files of {of}", not_found=f"{of} has no {resource} resource")
    scan = f"/scans/{_q(scan_id)}" if scan_id else ""
    payload = await client.get_json(
        f"/data/experiments/{_q(session_id)}{scan}/resources/{_q(resource)}/files", ctx
    )
    return [
        ListedFile.from_remote(tables.remote_file(r), scan_id=scan_id, resource=resource)
        for r in tables.rows(payload, "the file listing")
    ]


# ---------------------------------------------------------------- one file


@dataclass
class FileReply:
    """An open download. ``start`` is where the body begins in the file: the offset
    asked for when the server answered 206, else 0 (a restart)."""

    status: int
    start: int
    length: int | None  # Content-Length of this body, if given
    total: int | None  # whole file size (from Content-Range or Content-Length)
    content_type: str
    last_modified: str  # the header as sent (not parsed: nothing here needs it)
    response: aiohttp.ClientResponse

    async def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionFailed(
                f"the connection dropped in the middle of the file: {exc or type(exc).__name__}"
            ) from exc


_CONTENT_RANGE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*")


@asynccontextmanager
async def open_file(
    client: XnatClient, uri: str, *, offset: int = 0, what: str = ""
) -> AsyncIterator[FileReply]:
    """Stream one file; re-logs in once if the session expired (401)."""
    ctx = client.context(f"download {what or uri}")
    if not client.logged_in:
        await client.login()
    url = client.url(data_uri(uri))
    for attempt in (0, 1):
        generation = client._generation
        headers = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        if client._basic_always:
            headers["Authorization"] = client._basic()
        try:
            response = await client._http().get(
                url,
                headers=headers,
                allow_redirects=False,
                proxy=client._proxy,
                # Big reads: fewer, larger chunks through the loop (64 KiB by default).
                read_bufsize=READ_BUFFER,
            )
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise TLSError(f"Cannot {ctx.action}: TLS failed: {exc}", url=url) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionFailed(
                f"Cannot {ctx.action}: {exc or type(exc).__name__}", url=url
            ) from exc
        try:
            if response.status == 401:
                text = await response.text(errors="replace")
                if attempt == 1:
                    # The login itself worked (a wrong password fails in _relogin):
                    # the new session was lost again, which a later try may survive.
                    raise SessionExpired(
                        f"Cannot {ctx.action}: the server refuses the renewed session",
                        retriable=True,
                        status=401,
                        server_message=extract_server_message(text),
                        url=url,
                    )
                await client._relogin(generation)
                continue
            if response.status == 416 and offset > 0:
                raise PartTooLong(f"Cannot {ctx.action}: {PartTooLong.default_message}")
            if response.status not in (200, 206):
                text = await response.text(errors="replace")
                message = extract_server_message(text, response.headers.get("Content-Type", ""))
                raise error_for_status(response.status, message, ctx, method="GET", url=url)
            client._last_ok = time.monotonic()
            yield _reply(response, offset)
            return
        finally:
            response.release()
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class _ReplyHead:
    """What both download paths read off an answer's status and headers."""

    start: int
    length: int | None
    total: int | None
    content_type: str
    last_modified: str


def _reply_head(status: int, header: Callable[[str], str | None], offset: int) -> _ReplyHead:
    length_text = header("Content-Length") or ""
    length = int(length_text) if length_text.isdigit() else None
    start, total = 0, length
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(header("Content-Range") or "")
        if not match or int(match.group(1)) != offset:
            # A 206 for another span than asked: not trusted (§A.4).
            raise ProtocolError(
                "the server answered a resumed download with the wrong part of the file",
                retriable=True,
            )
        start = offset
        total = int(match.group(3)) if match.group(3) != "*" else None
    return _ReplyHead(
        start, length, total, header("Content-Type") or "", header("Last-Modified") or ""
    )


def _reply(response: aiohttp.ClientResponse, offset: int) -> FileReply:
    h = _reply_head(response.status, response.headers.get, offset)
    return FileReply(
        response.status, h.start, h.length, h.total, h.content_type, h.last_modified, response
    )


class NeedLogin(Exception):
    """The server answered 401 to a threaded GET: the session must be renewed (on the
    event loop, by the client) and the file asked for again."""

    def __init__(self, generation: int) -> None:
        super().__init__("session expired")
        self.generation = generation


@dataclass
class BlockingReply:
    """A threaded GET's answer, as :class:`FileReply` describes one."""

    status: int
    start: int
    length: int | None
    total: int | None
    content_type: str
    last_modified: str
    body: _HttpBody

    def readinto(self, buffer: memoryview) -> int:
        try:
            return self.body.readinto(buffer)
        except (OSError, _BadAnswer) as exc:
            # A cut (the server or the network closed early) is not a wrong file:
            # what arrived is kept for a resume with Range.
            raise ConnectionFailed(
                f"the connection dropped in the middle of the file: {exc or type(exc).__name__}"
            ) from exc


class _BadAnswer(Exception):
    """What came back is not HTTP/1.1 as a server speaks it (or what would be sent)."""


_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Closed(ConnectionResetError):
    """The server closed a kept-alive connection before answering (then once more)."""


_HEAD_MAX = 1 << 16


class _Connection:
    """One kept-alive HTTP/1.1 connection of a worker thread.

    Lean on purpose: a GET, a status line and a few headers per file. http.client built
    each request through header validation and parsed each head with the email package
    (a fifth of the client's Python time per file); here the head is one recv and a
    split. Plain sockets receive with MSG_WAITALL: one system call (one hand-off of
    the interpreter lock) per step of the body instead of one per 64 KiB.
    """

    def __init__(self, sock: socket.socket, host_header: str) -> None:
        self.sock = sock
        self.host_header = host_header
        self.rest = b""  # read past the head: the first bytes of the body
        self.closed = False
        self.flags = 0 if isinstance(sock, ssl.SSLSocket) else getattr(socket, "MSG_WAITALL", 0)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def send_get(self, path: str, headers: dict[str, str]) -> None:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if _URL_UNSAFE.search(path) or any(_CONTROL.search(v) for v in headers.values()):
            raise _BadAnswer(f"a control character or space in the request for {path!r}")
        self.sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n")

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        """(status, HTTP version, headers with lower-case names) of the next answer."""
        while True:
            data = self.rest
            while True:
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    head, self.rest = data[:end], data[end + 4 :]
                    break
                end = data.find(b"\n\n")
                if end >= 0:
                    head, self.rest = data[:end], data[end + 2 :]
                    break
                if len(data) > _HEAD_MAX:
                    raise _BadAnswer("the answer's head is longer than 64 KiB")
                more = self.sock.recv(_HEAD_MAX)
                if not more:
                    if data:
                        raise _BadAnswer("the connection closed in the middle of the head")
                    raise _Closed("the server closed the connection without an answer")
                data += more
            lines = head.decode("latin-1").split("\n")
            version, _, rest = lines[0].strip().partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/") or not code.isdigit():
                raise _BadAnswer(f"not an HTTP answer: {lines[0][:80]!r}")
            status = int(code)
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue): the real one follows
            headers: dict[str, str] = {}
            name = ""
            for line in lines[1:]:
                if line[:1] in (" ", "\t") and name:  # an obsolete folded line
                    headers[name] += " " + line.strip()
                    continue
                key, sep, value = line.partition(":")
                if not sep:
                    raise _BadAnswer(f"a malformed header line: {line[:80]!r}")
                name = key.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            return status, version, headers

    def body(self, status: int, version: str, headers: dict[str, str]) -> _HttpBody:
        """The answer's body as RFC 9112 §6.3 frames it."""
        keep = "close" not in headers.get("connection", "").lower() and (
            version != "HTTP/1.0" or "keep-alive" in headers.get("connection", "").lower()
        )
        if status in (204, 304) or status < 200:
            return _HttpBody(self, 0, keep=keep)
        if headers.get("transfer-encoding", "").lower().rstrip().endswith("chunked"):
            return _HttpBody(self, None, keep=keep, chunked=True)
        length = headers.get("content-length", "").strip()
        if "transfer-encoding" not in headers and length.isdigit():
            return _HttpBody(self, int(length), keep=keep)
        return _HttpBody(self, None, keep=False)  # to the end of the connection

    def fill(self, view: memoryview) -> int:
        """Bytes into ``view`` (at least one, unless the connection ended)."""
        rest = self.rest
        if rest:
            n = min(len(rest), len(view))
            view[:n] = rest[:n]
            self.rest = rest[n:]
            return n
        return self.sock.recv_into(view, len(view), self.flags)

    def line(self) -> bytes:
        data = self.rest
        while (end := data.find(b"\n")) < 0:
            if len(data) > _HEAD_MAX:
                raise _BadAnswer("a chunk header longer than 64 KiB")
            more = self.sock.recv(_HEAD_MAX)
            if not more:
                raise _BadAnswer("the connection closed in the middle of a chunk")
            data += more
        self.rest = data[end + 1 :]
        return data[:end].rstrip(b"\r")


class _HttpBody:
    """One answer's body: ``length`` bytes, chunks, or all until the server closes."""

    def __init__(
        self, conn: _Connection, length: int | None, *, keep: bool, chunked: bool = False
    ) -> None:
        self.conn = conn
        self.left = length  # None: chunked, or until the end of the connection
        self.keep = keep
        self.chunked = chunked
        self.chunk = 0  # bytes left in the current chunk
        self.done = False
        if length == 0:
            self._end()

    def _end(self) -> None:
        self.done = True
        if not self.keep:
            self.conn.close()

    def readinto(self, view: memoryview) -> int:
        if self.done or not view:
            return 0
        conn = self.conn
        if self.chunked:
            if not self.chunk:
                size = conn.line().split(b";", 1)[0].strip()
                try:
                    self.chunk = int(size, 16)
                except ValueError:
                    raise _BadAnswer(f"a malformed chunk size {size[:20]!r}") from None
                if not self.chunk:
                    while conn.line():  # trailers, up to the empty line
                        pass
                    self._end()
                    return 0
            n = conn.fill(view[: min(len(view), self.chunk)])
            if not n:
                raise _BadAnswer(f"{self.chunk} bytes of a chunk short")
            self.chunk -= n
            if not self.chunk and conn.line():
                raise _BadAnswer("a chunk longer than its size")
            return n
        if self.left is None:  # until the server closes
            n = conn.fill(view)
            if not n:
                self._end()
            return n
        n = conn.fill(view[: min(len(view), self.left)])
        if not n:
            raise _BadAnswer(f"{self.left} bytes short")
        self.left -= n
        if not self.left:
            self._end()
        return n

    def read_all(self, limit: int = 1 << 20) -> bytes:
        """The rest of a (small) body: an error page."""
        out = bytearray()
        view = memoryview(bytearray(1 << 16))
        while len(out) < limit:
            n = self.readinto(view)
            if not n:
                return bytes(out)
            out += view[:n]
        self.conn.close()  # the rest unread: the connection cannot be reused
        return bytes(out)


class ThreadedFetcher:
    """Single-file GETs on blocking connections, one per worker thread.

    Receiving, hashing and writing all release the GIL, so several files move at once
    without the event loop touching each chunk (with aiohttp on the loop, the client's
    one thread was the limit). It carries the client's session cookie (or Basic auth,
    where the server gives no session) and its TLS settings; a 401 raises
    :class:`NeedLogin` for the caller to renew the session on the loop. Not for proxies:
    :meth:`usable` is False there, and :func:`open_file` is used instead.
    """

    def __init__(self, client: XnatClient) -> None:
        self.client = client
        parts = urlsplit(client.server)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self._local = threading.local()
        self._open: set[_Connection] = set()
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self.aborted = False
        self._prepared: tuple[dict[str, str], int] | None = None

    @staticmethod
    def usable(client: XnatClient) -> bool:
        return client._proxy is None and client.server.startswith(("http://", "https://"))

    def _headers(self) -> tuple[dict[str, str], int]:
        client = self.client
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if client._basic_always:
            headers["Authorization"] = client._basic()
        else:
            jar = client._http().cookie_jar.filter_cookies(URL(client.server + "/data/"))
            cookies = "; ".join(f"{k}={m.value}" for k, m in jar.items())
            if cookies:
                headers["Cookie"] = cookies
        return headers, client._generation

    def prepare(self) -> tuple[dict[str, str], int]:
        """Headers for the next requests and the login they belong to (on the loop).

        Made once per login (filtering the cookie jar for every file cost the event
        loop, which hands the workers their files, more than the rest of the hop).
        """
        made = self._prepared
        if made is None or made[1] != self.client._generation:
            made = self._prepared = self._headers()
        return made

    def _connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.closed:
            self.drop()
            conn = None
        if conn is None:
            sock = socket.create_connection((self.host, self.port), self.client._connect_timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.https:
                    sock = self._tls().wrap_socket(sock, server_hostname=self.host)
                _blocking_socket(sock, self.client._read_timeout)
            except BaseException:
                sock.close()
                raise
            host = f"[{self.host}]" if ":" in self.host else self.host
            default = 443 if self.https else 80
            conn = _Connection(sock, host if self.port == default else f"{host}:{self.port}")
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        return conn

    def _tls(self) -> ssl.SSLContext:
        """The client's TLS settings, made once (loading the system's CAs costs ~20 ms)."""
        if self._context is None:
            ctx = self.client._ssl
            if ctx is False:
                ctx = ssl._create_unverified_context()
            elif not isinstance(ctx, ssl.SSLContext):
                ctx = ssl.create_default_context()
            self._context = ctx
        return self._context

    def drop(self) -> None:
        """Forget this thread's connection (after an error: the next GET reconnects)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._open.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def abort(self) -> None:
        """Shut every connection down (from any thread): a worker blocked in a read
        returns at once instead of at the read timeout, so closing never waits on a
        stalled server."""
        with self._lock:
            self.aborted = True
            conns, self._open = list(self._open), set()
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def get(
        self,
        uri: str,
        headers: dict[str, str],
        generation: int,
        *,
        offset: int = 0,
        what: str = "",
    ) -> BlockingReply:
        """Send the GET and read the head of the answer (in a worker thread)."""
        ctx = self.client.context(f"download {what or uri}")
        path = data_uri(uri)
        if path.startswith(("http://", "https://")):
            path = "/" + path.split("://", 1)[1].split("/", 1)[1]
        elif urlsplit(self.client.server).path.rstrip("/"):
            path = urlsplit(self.client.server).path.rstrip("/") + path
        sent = dict(headers)
        if offset > 0:
            sent["Range"] = f"bytes={offset}-"
        for attempt in (0, 1):
            if self.aborted:
                raise ConnectionFailed(f"Cannot {ctx.action}: the download was stopped")
            try:
                conn = self._connection()
                conn.send_get(path, sent)
                status, version, head = conn.read_head()
                break
            except ssl.SSLError as exc:
                self.drop()
                # A certificate the client does not trust: retrying will not change it.
                raise TLSError(
                    f"TLS with {self.host} failed while trying to {ctx.action}: {exc}", url=path
                ) from exc
            except (OSError, _BadAnswer) as exc:
                self.drop()
                # A kept-alive connection the server closed meanwhile: once more, fresh.
                if (
                    not self.aborted
                    and attempt == 0
                    and isinstance(exc, (ConnectionResetError, BrokenPipeError))
                ):
                    continue
                raise ConnectionFailed(
                    f"Cannot {ctx.action}: {exc or type(exc).__name__}", url=path
                ) from exc
        try:
            body = conn.body(status, version, head)
            if status == 401:
                body.read_all()
                raise NeedLogin(generation)
            if status == 416 and offset > 0:
                body.read_all()
                raise PartTooLong(f"Cannot {ctx.action}: {PartTooLong.default_message}")
            if status not in (200, 206):
                text = body.read_all().decode("utf-8", "replace")
                message = extract_server_message(text, head.get("content-type", ""))
                raise error_for_status(status, message, ctx, method="GET", url=path)
        except (OSError, _BadAnswer) as exc:
            self.drop()
            raise ConnectionFailed(
                f"Cannot {ctx.action}: {exc or type(exc).__name__}", url=path
            ) from exc
        try:
            h = _reply_head(status, lambda name: head.get(name.lower()), offset)
        except BaseException:
            self.drop()  # its body unread: the connection cannot take another GET
            raise
        return BlockingReply(
            status, h.start, h.length, h.total, h.content_type, h.last_modified, body
        )


def _blocking_socket(sock: socket.socket, stall: float) -> None:
    """Connected: blocking reads with a kernel timeout. A Python socket timeout polls
    before every read (twice the system calls, each a hand-off of the interpreter
    lock between the download threads); SO_RCVTIMEO still ends a stalled read."""
    sock.settimeout(None)
    seconds = max(1, int(stall))
    packed = struct.pack("ll", seconds, 0)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, packed)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, packed)


class IntegrityError(XnatError):
    """The bytes are not the file: an error page, the wrong size, or the wrong MD5.
    The message says what is wrong, not which file (the caller knows, and failures of
    many files for one reason then read as one).

    Retriable: a proxy's error page or a corrupted transfer may not happen again.
    """

    default_retriable = True
    default_hint = "The file is downloaded again; nothing wrong was kept."


class NotAsListed(IntegrityError):
    """The size or MD5 the file listing gave does not match what arrived: the file may
    have changed on the server since (a job checks against its own listing), not only
    been damaged on the way."""


class PartTooLong(IntegrityError):
    """A continuation (Range) the server refuses with 416: the ``.part`` on disk is as
    long as the file or longer (it changed, or its size was not listed)."""

    default_message = (
        "the server has no bytes past the partial file kept (HTTP 416); it is fetched again"
    )


_HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body")


def _error_page(head: bytes, content_type: str, name: str) -> str | None:
    """Why ``head`` (the first bytes) is an error page rather than ``name``'s data.

    Called again as ``head`` grows (to 132 bytes): an XML prolog is an XHTML page only
    once ``<!DOCTYPE html`` or ``<html`` follows it; many data formats are XML (GIFTI
    surfaces, VTK, Slicer scenes) and start the same way.
    """
    low_name = name.lower()
    markup_file = low_name.endswith((".html", ".htm", ".xml", ".xhtml", ".svg"))
    if markup_file:
        return None
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        return f"the server sent an HTML page ({ctype}) instead of the file"
    start = head.lstrip()[:9].lower()
    if start.startswith(_HTML_STARTS):
        return "the server sent an HTML page instead of the file"
    if start.startswith(b"<?xml") and any(t in head.lower() for t in (b"<!doctype html", b"<html")):
        return "the server sent an XHTML page instead of the file"
    return None


def _bad_magic(head: bytes, name: str, size: int) -> str | None:
    low = name.lower()
    if low.endswith(".zip") and size >= 4 and not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "not a zip (no zip signature), though named .zip"
    if low.endswith(".dcm") and size >= 132 and head[128:132] != b"DICM":
        return "not a DICOM Part 10 file (no DICM marker), though named .dcm"
    return None


class Verifier:
    """Feed a body's chunks in order; :meth:`finish` says whether they are the file.

    ``prefix`` is the part already on disk (a resume): its bytes feed the MD5 too.
    """

    def __init__(
        self,
        name: str,
        *,
        size: int | None,
        digest: str = "",
        content_type: str = "",
        streams: int = 1,
    ) -> None:
        self.name = name
        self.expected_size = size
        self.digest = digest.lower()
        self.content_type = content_type
        # ``streams``: files checked at once, whose MD5s can share the vector lanes
        self.md5: md5.Hash = md5.new(streams=streams)
        self.count = 0
        self._head = b""

    def feed(self, chunk: bytes | memoryview, *, hash: bool = True) -> None:
        """Checks, counts and hashes ``chunk``. ``hash=False``: the caller hands the
        bytes to :meth:`hash_later` itself, in runs as long as it can make them."""
        if len(self._head) < 132:
            self._head += bytes(chunk[: 132 - len(self._head)])
            if self.count == 0 or len(self._head) >= 16:
                why = _error_page(self._head, self.content_type, self.name)
                if why is not None:
                    raise IntegrityError(why)
        if hash:
            self.md5.update(chunk)
        self.count += len(chunk)
        if self.expected_size is not None and self.count > self.expected_size:
            raise NotAsListed(f"the server sent more than the {self.expected_size} bytes listed")

    def hash_later(self, run: memoryview) -> None:
        """Queues the MD5 of ``run`` (fed with ``hash=False``, in order) to be computed
        beside other files' bytes; ``run`` must stay unchanged until :meth:`settle`."""
        self.md5.update_later(run)

    def settle(self) -> None:
        """Returns once every chunk fed is hashed."""
        self.md5.settle()

    def finish(self) -> str:
        """The MD5 hex of the whole file; raises IntegrityError when it is not the file."""
        if self.expected_size is not None and self.count != self.expected_size:
            raise NotAsListed(f"{self.count} bytes received, {self.expected_size} listed")
        got = self.md5.hexdigest()
        if self.digest:
            if got != self.digest:
                raise NotAsListed(
                    f"MD5 {got} does not match the listing's {self.digest} (the file changed "
                    "on the server since it was listed, or arrived damaged)"
                )
        else:
            # No digest to trust: at least the bytes must look like what the name says.
            why = _bad_magic(self._head, self.name, self.count)
            if why is not None:
                raise IntegrityError(why)
        return got

    @property
    def how(self) -> str:
        return "md5" if self.digest else "size"


async def fetch_verified(client: XnatClient, f: ListedFile) -> bytes:
    """The whole file in memory, verified (size, MD5 or magic); for small files."""
    async with open_file(client, f.uri, what=f.relpath) as reply:
        check = Verifier(
            f.relpath.rsplit("/", 1)[-1],
            size=f.size,
            digest=f.digest,
            content_type=reply.content_type,
        )
        parts: list[bytes] = []
        async for chunk in reply.chunks():
            check.feed(chunk)
            parts.append(chunk)
        check.finish()
    return b"".join(parts)


# ---------------------------------------------------------------- the catalog XML


@dataclass(frozen=True)
class CatalogEntry:
    """One resource of a download catalog (§A.5): a scan's, or the session's own."""

    session_id: str
    session_description: str
    scan_id: str  # '' for a session resource
    resource: str
    name: str  # the folder the catalog puts the resource's files in
    uri: str  # /data/experiments/{E}[/scans/{S}]/resources/{R}/files


_CATALOG_URI = re.compile(
    r"^/(?:archive|data|REST)/experiments/([^/]+)(?:/scans/([^/]+))?/resources/([^/]+)/files/?$"
)
# XNAT's catalogs nest a handful of levels (catalog, sets, session, sets, resource,
# entries): a deeper one is not one, and would exhaust the recursion.
_CATALOG_DEPTH = 64
_CATALOG_HINT = "Give the Catalog XML of XNAT's Download Images page (or the file it saved) as is."


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def parse_catalog(text: str | bytes) -> list[CatalogEntry]:
    """Entries of a ``cat:Catalog`` ("Download Images → Catalog XML"); clear errors."""
    from xml.etree import ElementTree as ET  # only --catalog reads XML: not every start

    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ProtocolError(f"the catalog is not valid XML ({exc})", hint=_CATALOG_HINT) from None
    if _local(root.tag) != "catalog":
        raise ProtocolError(
            f"not a download catalog (root element <{_local(root.tag)}>)", hint=_CATALOG_HINT
        )
    found: list[CatalogEntry] = []

    def walk(node: Any, session: tuple[str, str], depth: int = 0) -> None:
        if depth > _CATALOG_DEPTH:
            raise ProtocolError(
                f"the catalog nests deeper than {_CATALOG_DEPTH} levels: not a download catalog",
                hint=_CATALOG_HINT,
            )
        for child in node:
            kind = _local(child.tag)
            if kind == "entryset":
                here = session
                if not session[0]:
                    here = (child.get("ID", ""), child.get("description", ""))
                walk(child, here, depth + 1)
            elif kind in ("sets", "entries"):
                walk(child, session, depth + 1)
            elif kind == "entry":
                uri = child.get("URI", "")
                match = _CATALOG_URI.match(uri.split("?", 1)[0])
                if not match:
                    what = "an assessor's resource" if "/assessors/" in uri else "not a resource"
                    raise ProtocolError(
                        f"catalog entry {uri!r} is {what}: xnat-tui downloads the resources "
                        "of scans and of sessions",
                        hint="Make the catalog without assessors (Download Images), or leave "
                        "that entry out.",
                    )
                found.append(
                    CatalogEntry(
                        session_id=unquote(match.group(1)),
                        session_description=session[1],
                        scan_id=unquote(match.group(2) or ""),
                        resource=unquote(match.group(3)),
                        name=child.get("name", ""),
                        uri="/data" + uri[uri.index("/experiments/") :].split("?", 1)[0],
                    )
                )

    walk(root, ("", ""))
    return found
