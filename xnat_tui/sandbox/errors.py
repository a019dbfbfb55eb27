"""XNAT/Tomcat-like error responses for the sandbox.

API (stable):

* ``xnat_error(status, message) -> web.HTTPException`` — raise it from any handler.
  The body is Tomcat's HTML error report (``text/html``) with ``message`` verbatim
  (HTML-escaped only for ``<``, ``>``, ``&``), as XNAT's Restlet resources answer
  ``setStatus(code, "message")`` (xnat-api.md §1.5). Clients match on substrings of
  the message, so keep messages exactly as XNAT words them.
* ``error_middleware`` — converts anything unhandled into a short 500 page, so no
  Python traceback ever reaches a client. A client that goes away mid-request (its
  connection is gone) is one log line, not a traceback: nobody is left to answer.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_page(status: int, message: str) -> str:
    """Tomcat 9 style error report; the message appears verbatim."""
    phrase = _phrase(status)
    msg = html.escape(message, quote=False)
    return (
        '<!doctype html><html lang="en"><head><title>HTTP Status '
        f"{status} – {phrase}</title></head><body><h1>HTTP Status {status} – {phrase}</h1>"
        '<hr class="line" /><p><b>Type</b> Status Report</p>'
        f"<p><b>Message</b> {msg}</p>"
        f"<p><b>Description</b> {html.escape(_description(status))}</p>"
        '<hr class="line" /><h3>Apache Tomcat</h3></body></html>'
    )


def _description(status: int) -> str:
    try:
        return HTTPStatus(status).description
    except ValueError:
        return ""


class XnatHTTPError(web.HTTPError):
    """An HTTP error with any status and an XNAT message."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        # aiohttp reads the status from the (class) attribute; an instance value wins.
        self.status_code = status
        reason = _phrase(status)
        super().__init__(
            headers=headers,
            reason=reason,
            text=error_page(status, message),
            content_type="text/html",
        )
        self.message = message


def xnat_error(
    status: int, message: str, *, headers: dict[str, str] | None = None
) -> web.HTTPException:
    """Build (not raise) an XNAT-like error response; ``raise xnat_error(404, "...")``."""
    return XnatHTTPError(status, message, headers=headers)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if isinstance(exc, XnatHTTPError) or exc.status < 400:
            raise
        # aiohttp's own errors (404 no route, 405 method) get the same Tomcat look.
        raise xnat_error(exc.status, exc.reason or _phrase(exc.status)) from None
    except ConnectionError as exc:
        if not _client_gone(request):
            log.exception("unhandled error on %s %s", request.method, request.path)
            raise xnat_error(500, "The server encountered an internal error.") from None
        log.info(
            "client %s went away during %s %s (%s)",
            request.remote,
            request.method,
            request.path,
            exc or type(exc).__name__,
        )
        # Nothing can be sent; aiohttp drops this response quietly on the closed transport.
        return web.Response(status=499, reason="Client Closed Request")
    except TimeoutError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        raise xnat_error(500, "The server encountered an internal error.") from None
