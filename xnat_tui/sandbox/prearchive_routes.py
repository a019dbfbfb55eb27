"""Prearchive and archive-service routes (§6 of xnat-api.md)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Attach the prearchive routes to the sandbox application."""
