"""Site-level routes: ``GET /`` (CSRF token line), build info, version, site config."""

from __future__ import annotations

import time

from aiohttp import web

from xnat_tui.sandbox.auth import csrf_token
from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.keys import SESSION, SETTINGS
from xnat_tui.sandbox.permissions import request_user

_STARTED = time.time()


async def index(request: web.Request) -> web.Response:
    session = request.get(SESSION)
    token = csrf_token(session.id) if session is not None else ""
    # The Desktop Client scrapes this exact line (BaseJS.vm:46).
    page = (
        "<!DOCTYPE html><html><head><title>XNAT-compatible sandbox</title>"
        "<script>\n"
        f"    var csrfToken = '{token}';\n"
        "</script></head><body><h1>XNAT-compatible sandbox</h1>"
        "<p>A test and demo server for xnat-tui. This is not XNAT.</p></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def build_info(request: web.Request) -> dict[str, object]:
    settings = request.app[SETTINGS]
    now = int(time.time() * 1000)
    return {
        "version": settings.version,
        "buildNumber": "sandbox",
        "buildDate": "Mon Jan 01 00:00:00 UTC 2024",
        "sha": "0000000",
        "isDirty": "false",
        "commit": "sandbox",
        "timestamp": str(now),
        "hostName": request.host,
        "displayHostName": request.host,
        "nodeId": "sandbox",
    }


async def get_build_info(request: web.Request) -> web.Response:
    request_user(request)
    return web.json_response(build_info(request))


async def get_build_info_key(request: web.Request) -> web.Response:
    request_user(request)
    info = build_info(request)
    key = request.match_info["key"]
    if key not in info:
        raise xnat_error(404, f"No build property named {key}")
    return web.Response(text=str(info[key]), content_type="text/plain")


async def get_version(request: web.Request) -> web.Response:
    request_user(request)
    return web.Response(text=request.app[SETTINGS].version, content_type="text/plain")


async def get_uptime(request: web.Request) -> web.Response:
    request_user(request)
    seconds = int(time.time() - _STARTED)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return web.json_response({"days": days, "hours": hours, "minutes": minutes, "seconds": secs})


SITE_CONFIG = {
    "siteId": "XNAT",
    "requireLogin": True,
    "enableCsrfToken": True,
    "maxFailedLogins": 20,
    "sessionTimeout": "15 minutes",
    "aliasTokenTimeout": "2 days",
    "uiDefaultCompressedUploaderImporter": "DICOM-zip",
    "preventCrossModalityMerge": True,
    "checksums": True,
    "enableSitewideAnonymizationScript": True,
}


async def get_site_config(request: web.Request) -> web.Response:
    request_user(request)
    config = dict(SITE_CONFIG)
    timeout = int(request.app[SETTINGS].session_timeout)
    config["sessionTimeout"] = f"{timeout // 60} minutes" if timeout % 60 == 0 else f"{timeout}s"
    key = request.match_info.get("key")
    if key is None:
        return web.json_response(config)
    if key not in config:
        raise xnat_error(404, f"No site configuration property named {key}")
    return web.json_response(config[key])


async def flush_access_cache(request: web.Request) -> web.Response:
    request_user(request)
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/xapi/siteConfig/buildInfo", get_build_info)
    app.router.add_get("/xapi/siteConfig/buildInfo/{key}", get_build_info_key)
    app.router.add_get("/xapi/siteConfig/uptime", get_uptime)
    app.router.add_get("/xapi/siteConfig", get_site_config)
    app.router.add_get("/xapi/siteConfig/{key}", get_site_config)
    app.router.add_delete("/xapi/access/cache/flush", flush_access_cache)
    app.router.add_get("/data/version", get_version)
    app.router.add_get("/REST/version", get_version)
