"""Prearchive calls triage needs (xnat-api.md §6), over the client's transport.

Implements ``xnat_tui.transfer.triage.TriageOps`` structurally (no import of
``transfer``: the client layer stays below the engine). Rows come back as XNAT's own
string columns so ``--json`` output carries them unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from xnat_tui.xnat.errors import ErrorContext, NotFound, ProtocolError, XnatError
from xnat_tui.xnat.labels import ExistingSession

if TYPE_CHECKING:
    from xnat_tui.xnat.transport import Params, Reply

_MOVED = (200, 301, 302, 303)


class Transport(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        ctx: ErrorContext,
        *,
        params: Params | None = None,
        ok: Sequence[int] = (200,),
    ) -> Reply: ...

    def context(
        self, action: str, *, project: str = "", permission: str = "", not_found: str = ""
    ) -> ErrorContext: ...


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


def table_rows(payload: Any, where: str) -> list[dict[str, str]]:
    """Rows of an XNAT JSON table with every cell as a string."""
    try:
        result = payload["ResultSet"]["Result"]
    except (KeyError, TypeError):
        raise ProtocolError(f"Unexpected reply from {where}: not an XNAT result table.") from None
    if not isinstance(result, list):
        raise ProtocolError(f"Unexpected reply from {where}: not an XNAT result table.")
    return [
        {str(k): "" if v is None else str(v) for k, v in item.items()}
        for item in result
        if isinstance(item, dict)
    ]


def project_of(url: str) -> str:
    parts = listing_url(url).strip("/").split("/")
    return parts[2] if len(parts) > 2 and parts[0] == "prearchive" else ""


def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ScanInfo:
    """A prearchive scan with its file count and size summed over its resources."""

    id: str
    description: str
    files: int | None = None
    size: int | None = None


class ClientTriageOps:
    """Server side of prearchive triage for one logged-in client."""

    def __init__(self, client: Any) -> None:
        # The client either is the transport or owns one.
        self.t: Transport = getattr(client, "transport", client)

    async def _json_rows(
        self, path: str, ctx: ErrorContext, params: dict[str, str] | None = None
    ) -> Any:
        merged: list[tuple[str, str | int | bool | None]] = list((params or {}).items())
        merged.append(("format", "json"))
        reply = await self.t.request("GET", path, ctx, params=merged)
        return table_rows(reply.json(), path)

    # --- listing ---------------------------------------------------------------------

    async def list_prearchive(self, project: str | None = None) -> list[dict[str, str]]:
        path = "/data/prearchive/projects" + (f"/{quote(project)}" if project else "")
        ctx = self.t.context(
            "list the prearchive" + (f" of {project}" if project else ""),
            project=project or "",
            permission=f"edit access to project {project}" if project else "",
        )
        return [dict(r) for r in await self._json_rows(path, ctx)]

    async def editable_projects(self) -> list[str]:
        ctx = self.t.context("list the projects you can edit")
        found = await self._json_rows(
            "/data/projects", ctx, {"permissions": "edit", "dataType": "xnat:subjectData"}
        )
        return [r.get("id") or r.get("ID", "") for r in found if r.get("id") or r.get("ID")]

    async def existing_sessions(self, project: str) -> list[ExistingSession]:
        ctx = self.t.context(f"list the sessions of {project}", project=project)
        found = await self._json_rows(
            f"/data/projects/{quote(project)}/experiments",
            ctx,
            {"columns": "ID,label,subject_label,UID,xsiType"},
        )
        return [
            ExistingSession(
                r.get("label", ""), r.get("UID", ""), r.get("subject_label", ""), project
            )
            for r in found
        ]

    async def subjects(self, project: str) -> list[str]:
        ctx = self.t.context(f"list the subjects of {project}", project=project)
        found = await self._json_rows(f"/data/projects/{quote(project)}/subjects", ctx)
        return [r.get("label", "") for r in found]

    # --- one entry -------------------------------------------------------------------

    async def scans(self, url: str) -> list[ScanInfo]:
        base = data_uri(url)
        ctx = self.t.context("list the scans of the prearchive session", project=project_of(url))
        scans = await self._json_rows(base + "/scans", ctx)

        async def stats(scan_id: str) -> tuple[int | None, int | None]:
            try:
                res = await self._json_rows(f"{base}/scans/{quote(scan_id)}/resources", ctx)
            except XnatError:
                return None, None
            files = [_int(r.get("file_count", "")) for r in res]
            sizes = [_int(r.get("file_size", "")) for r in res]
            total_files = None if any(f is None for f in files) else sum(f or 0 for f in files)
            total_size = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
            return total_files, total_size

        ids = [r.get("ID", "") for r in scans]
        counted = await asyncio.gather(*(stats(i) for i in ids))
        return [
            ScanInfo(r.get("ID", ""), r.get("series_description", ""), f, s)
            for r, (f, s) in zip(scans, counted, strict=True)
        ]

    async def last_log(self, url: str) -> str:
        base = data_uri(url)
        ctx = self.t.context("read the prearchive log", project=project_of(url))
        try:
            reply = await self.t.request("GET", base + "/logs/last", ctx)
        except NotFound:
            return ""
        return reply.text.strip()

    # --- actions ---------------------------------------------------------------------

    async def move(self, url: str, project: str) -> str:
        source = project_of(url)
        ctx = self.t.context(
            f"move the prearchive session to {project}",
            project=project,
            permission=f"edit access to projects {source} and {project}",
        )
        reply = await self.t.request(
            "POST",
            data_uri(url),
            ctx,
            params={"action": "move", "newProject": project},
            ok=_MOVED,
        )
        moved = listing_url(reply.text or reply.location)
        if moved.startswith("/prearchive/"):
            return moved
        # No URI in the answer: the folder keeps its timestamp and name in the new project.
        parts = listing_url(url).strip("/").split("/")
        return "/" + "/".join(["prearchive", "projects", project, *parts[3:]])

    async def rebuild(self, url: str) -> None:
        ctx = self.t.context(
            "rebuild the prearchive session",
            project=project_of(url),
            permission=f"edit access to project {project_of(url)}",
        )
        await self.t.request("POST", data_uri(url), ctx, params={"action": "build"}, ok=(200, 301))

    async def delete(self, url: str) -> None:
        ctx = self.t.context(
            "delete the prearchive session",
            project=project_of(url),
            permission=f"edit access to project {project_of(url)}",
            not_found="the prearchive session no longer exists",
        )
        await self.t.request("DELETE", data_uri(url), ctx, ok=(200, 204))

    async def archive(self, url: str, *, subject: str, label: str, overwrite: str) -> str:
        project = project_of(url)
        ctx = self.t.context(
            f"archive the prearchive session to {project}/{subject}/{label}",
            project=project,
            permission=f"edit access to project {project}",
            not_found="the prearchive session no longer exists",
        )
        params: dict[str, str] = {"src": listing_url(url)}
        # ``subject``/``session`` take precedence over the session document in the archiver.
        if subject:
            params["subject"] = subject
        if label:
            params["session"] = label
        if overwrite in ("append", "delete"):
            params["overwrite"] = overwrite
        reply = await self.t.request(
            "POST", "/data/services/archive", ctx, params=params, ok=(200, 301, 303)
        )
        uri = (reply.text.strip().splitlines() or [""])[0].strip() or reply.location
        return data_uri(uri) if uri else ""
