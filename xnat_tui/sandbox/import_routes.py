"""Import service routes (§5 of xnat-api.md)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Attach the import service routes to the sandbox application."""
