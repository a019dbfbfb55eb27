"""The threaded fetcher's own HTTP/1.1: framing, keep-alive and failures, against a
loopback server that answers with canned bytes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials
from xnat_tui.xnat.download_ops import BlockingReply, NeedLogin, ThreadedFetcher
from xnat_tui.xnat.errors import ConnectionFailed, NotFound, ProtocolError

HEAD = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
CLOSE = None  # read the request, then close the connection without an answer


def ok(body: bytes, extra: str = "") -> bytes:
    return f"{HEAD}Content-Length: {len(body)}\r\n{extra}\r\n".encode() + body


class Canned:
    """Answers each request, on whichever connection, with the next canned answer."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[str] = []
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                request, data = data.split(b"\r\n\r\n", 1)
                self.requests.append(request.decode())
                answer = self.answers.pop(0)
                if answer is CLOSE:
                    return
                conn.sendall(answer)
                if b"Connection: close" in answer.split(b"\r\n\r\n")[0]:
                    return


Serve = Callable[[list[bytes | None]], tuple[Canned, ThreadedFetcher]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    made: list[Canned] = []

    def start(answers: list[bytes | None]) -> tuple[Canned, ThreadedFetcher]:
        canned = Canned(answers)
        made.append(canned)
        client = XnatClient(Credentials(f"http://127.0.0.1:{canned.port}", "u", "p"))
        return canned, ThreadedFetcher(client)

    yield start
    for canned in made:
        canned.server.close()


def body(reply: BlockingReply, step: int = 7) -> bytes:
    out = bytearray()
    view = memoryview(bytearray(step))
    while n := reply.readinto(view):
        out += view[:n]
    return bytes(out)


def get(fetcher: ThreadedFetcher, path: str = "/data/f", offset: int = 0) -> BlockingReply:
    return fetcher.get(path, {"Cookie": "JSESSIONID=abc"}, 1, offset=offset, what="f")


def test_kept_alive_connection_carries_length_and_chunked_bodies(serve: Serve) -> None:
    chunked = (
        f"{HEAD}Transfer-Encoding: chunked\r\n\r\n"
        "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    ).encode()
    canned, fetcher = serve([ok(b"first body"), chunked, ok(b"")])
    assert body(get(fetcher)) == b"first body"
    assert body(get(fetcher, offset=0), step=3) == b"hello, world"
    assert body(get(fetcher)) == b""
    assert canned.connections == 1
    first = canned.requests[0].split("\r\n")
    assert first[0] == "GET /data/f HTTP/1.1"
    assert f"Host: 127.0.0.1:{canned.port}" in first and "Cookie: JSESSIONID=abc" in first


def test_close_and_bodies_to_the_end_of_the_connection_reconnect(serve: Serve) -> None:
    until_close = f"{HEAD}Connection: close\r\n\r\n".encode() + b"x" * 70000
    canned, fetcher = serve([ok(b"one", "Connection: close\r\n"), until_close, ok(b"three")])
    assert body(get(fetcher)) == b"one"
    assert body(get(fetcher), step=4096) == b"x" * 70000
    assert body(get(fetcher)) == b"three"
    assert canned.connections == 3


def test_a_connection_the_server_dropped_while_idle_is_tried_once_more(serve: Serve) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after 100")
    canned, fetcher = serve([ok(b"a"), CLOSE, interim])
    assert body(get(fetcher)) == b"a"
    assert body(get(fetcher)) == b"after 100"
    assert canned.connections == 2


def test_401_404_and_a_cut_body(serve: Serve) -> None:
    page = b"<html><body><h3>No such file</h3></body></html>"
    not_found = (
        f"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {len(page)}\r\n\r\n"
    ).encode() + page
    unauthorised = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nlogin"
    cut = f"{HEAD}Content-Length: 1000\r\nConnection: close\r\n\r\n".encode() + b"y" * 400
    canned, fetcher = serve([unauthorised, not_found, cut, ok(b"fine")])
    with pytest.raises(NeedLogin):
        get(fetcher)
    with pytest.raises(NotFound):
        get(fetcher)
    reply = get(fetcher)
    with pytest.raises(ConnectionFailed, match="600 bytes short"):
        body(reply, step=100)
    fetcher.drop()  # what the engine does after a failed file
    assert body(get(fetcher)) == b"fine"
    assert canned.connections == 2  # the error pages were read: the connection was kept


def test_a_wrong_range_or_no_http_drops_the_connection(serve: Serve) -> None:
    wrong = (
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\n"
        b"Content-Length: 10\r\n\r\n0123456789"
    )
    right = (
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\n"
        b"Content-Length: 5\r\n\r\n56789"
    )
    canned, fetcher = serve([wrong, right, b"SSH-2.0-OpenSSH\r\n\r\n", ok(b"z")])
    with pytest.raises(ProtocolError):
        get(fetcher, offset=5)
    reply = get(fetcher, offset=5)  # a fresh connection: the unread body is not a head
    assert (reply.status, reply.start, reply.total, body(reply)) == (206, 5, 10, b"56789")
    assert "Range: bytes=5-" in canned.requests[1]
    with pytest.raises(ConnectionFailed, match="not an HTTP answer"):
        get(fetcher)
    assert body(get(fetcher)) == b"z"
    assert canned.connections == 3


def test_a_header_with_a_line_break_is_never_sent(serve: Serve) -> None:
    canned, fetcher = serve([ok(b"never")])
    with pytest.raises(ConnectionFailed, match="control character"):
        fetcher.get("/data/f", {"Cookie": "a\r\nX-Evil: 1"}, 1)
    assert canned.requests == []
