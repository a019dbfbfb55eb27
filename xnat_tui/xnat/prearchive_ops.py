"""Prearchive calls triage needs (xnat-api.md §6), delegated to :class:`XnatClient`.

Implements ``xnat_tui.workflow.prearchive.TriageOps`` structurally (no import of
``workflow``: the client layer stays below the application layer). Rows come back as XNAT's own
string columns so ``--json`` output carries them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from xnat_tui.xnat.errors import XnatError
from xnat_tui.xnat.models import ExistingSession
from xnat_tui.xnat.transport import gather_or_cancel

if TYPE_CHECKING:
    from xnat_tui.xnat.client import XnatClient


def listing_url(uri: str) -> str:
    """``/data/prearchive/...`` or a full URL → the ``/prearchive/...`` form XNAT lists."""
    text = uri.strip().splitlines()[0].strip() if uri.strip() else ""
    if "://" in text:
        text = "/" + text.split("://", 1)[1].split("/", 1)[1]
    for prefix in ("/data", "/REST"):
        if text.startswith(prefix + "/"):
            text = text[len(prefix) :]
    return text


def data_uri(uri: str) -> str:
    """The ``/data/...`` path every call takes."""
    return "/data" + listing_url(uri)


def project_of(url: str) -> str:
    parts = listing_url(url).strip("/").split("/")
    return parts[2] if len(parts) > 2 and parts[0] == "prearchive" else ""


@dataclass(frozen=True)
class ScanInfo:
    """A prearchive scan with its file count and size summed over its resources."""

    id: str
    description: str
    files: int | None = None
    size: int | None = None


class ClientTriageOps:
    """Server side of prearchive triage for one logged-in :class:`XnatClient`."""

    def __init__(self, client: XnatClient) -> None:
        self.client = client

    # --- listing ---------------------------------------------------------------------

    async def list_prearchive(self, project: str | None = None) -> list[dict[str, str]]:
        entries = await self.client.prearchive(project)
        return [dict(e.raw) for e in entries]

    async def editable_projects(self) -> list[str]:
        return [p.id for p in await self.client.uploadable_projects()]

    async def existing_sessions(self, project: str) -> list[ExistingSession]:
        return [e.as_existing() for e in await self.client.experiments(project)]

    async def subjects(self, project: str) -> list[str]:
        return [s.label for s in await self.client.subjects(project)]

    # --- one entry -------------------------------------------------------------------

    async def scans(self, url: str) -> list[ScanInfo]:
        scans = await self.client.prearchive_scans(data_uri(url))

        async def stats(scan_id: str) -> tuple[int | None, int | None]:
            try:
                res = await self.client.prearchive_resources(data_uri(url), scan_id)
            except XnatError:
                return None, None
            files = [r.file_count for r in res]
            sizes = [r.file_size for r in res]
            total_files = None if any(f is None for f in files) else sum(f or 0 for f in files)
            total_size = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
            return total_files, total_size

        counted = await gather_or_cancel(*(stats(s.id) for s in scans))
        return [
            ScanInfo(s.id, s.series_description, f, n)
            for s, (f, n) in zip(scans, counted, strict=True)
        ]

    async def last_log(self, url: str) -> str:
        return await self.client.prearchive_last_log(data_uri(url))

    # --- actions ---------------------------------------------------------------------

    async def move(self, url: str, project: str) -> str:
        return listing_url(await self.client.prearchive_move(data_uri(url), project))

    async def rebuild(self, url: str) -> None:
        await self.client.prearchive_rebuild(data_uri(url))

    async def delete(self, url: str) -> None:
        await self.client.prearchive_delete(data_uri(url))

    async def archive(self, url: str, *, subject: str, label: str, overwrite: str) -> str:
        result = await self.client.archive(
            data_uri(url), overwrite=overwrite, subject=subject, label=label
        )
        return result.uri
