"""The calls an uploader and a prearchive triage need (xnat-api.md §3-7), typed.

``XnatClient`` adds the XNAT vocabulary to :class:`~xnat_tui.xnat.transport.XnatTransport`
(login, cookie reuse, re-login, typed errors). Every method raises an
:class:`~xnat_tui.xnat.errors.XnatError` subclass on failure.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp

from xnat_tui.xnat import tables
from xnat_tui.xnat.errors import (
    ErrorContext,
    NotFound,
    PermissionDenied,
    ProtocolError,
)
from xnat_tui.xnat.filters import SeriesImportFilter
from xnat_tui.xnat.models import (
    AliasToken,
    AnonScript,
    ArchiveResult,
    CommitResult,
    Experiment,
    ImportResult,
    PrearchiveEntry,
    PrearchiveScan,
    Project,
    ProjectRef,
    ProjectSettings,
    RemoteFile,
    RemoteScan,
    Resource,
    Subject,
    SubjectResult,
    data_uri,
)
from xnat_tui.xnat.transport import Body, Reply, XnatTransport, gather_or_cancel

OVERWRITE_MODES = ("none", "append", "delete")
EXPERIMENT_COLUMNS = (
    "ID,label,project,subject_ID,subject_label,date,modality,xsiType,UID,insert_date,URI"
)
_PREARC = re.compile(r"^(?:/data|/REST)?/prearchive/projects/([^/]+)/([^/]+)/([^/?#]+)")


def _q(segment: str) -> str:
    return quote(segment, safe="")


def prearchive_parts(uri: str) -> tuple[str, str, str]:
    """``/data/prearchive/projects/P/TS/FOLDER`` → (P, TS, FOLDER)."""
    path = uri.split("://", 1)[-1]
    if "://" in uri:
        path = "/" + path.split("/", 1)[1]
    match = _PREARC.match(path.strip())
    if not match:
        raise ValueError(f"{uri!r} is not a prearchive session URI")
    return match.group(1), match.group(2), match.group(3)


def _uris(text: str) -> tuple[str, ...]:
    """A ``text/uri-list`` body (CRLF separated, ``#`` comments allowed)."""
    return tuple(
        line.strip()
        for line in text.replace("\r", "\n").split("\n")
        if line.strip() and not line.startswith("#")
    )


def _src(uri: str) -> str:
    """``src=`` takes the path without ``/data`` (xnat-api.md §6.5)."""
    path = data_uri(uri)
    return path[len("/data") :] if path.startswith("/data/") else path


class XnatClient(XnatTransport):
    """Async XNAT client; one per server. ``async with XnatClient(creds) as xnat: ...``."""

    # ---------------------------------------------------------------- projects

    async def uploadable_projects(self) -> list[ProjectRef]:
        """Projects the user may upload to (what the Desktop Client lists)."""
        ctx = self.context("list the projects you can upload to")
        payload = await self.get_json(
            "/data/projects", ctx, {"permissions": "edit", "dataType": "xnat:subjectData"}
        )
        refs = [tables.project_ref(r) for r in tables.rows(payload, "/data/projects")]
        return sorted((r for r in refs if r.id), key=lambda r: (r.secondary_id or r.id).lower())

    async def projects(self) -> list[Project]:
        """Projects the user can read."""
        ctx = self.context("list projects")
        payload = await self.get_json("/data/projects", ctx)
        return [tables.project(r) for r in tables.rows(payload, "/data/projects")]

    async def project(self, project_id: str) -> Project:
        ctx = self.context(f"read project {project_id}", project=project_id)
        payload = await self.get_json(f"/data/projects/{_q(project_id)}", ctx)
        try:
            item = payload["items"][0]
            fields = item["data_fields"]
        except (KeyError, IndexError, TypeError):
            raise ProtocolError(f"Unexpected reply for project {project_id}.") from None
        row = {str(k): "" if v is None else str(v) for k, v in fields.items()}
        row.setdefault("URI", f"/data/projects/{project_id}")
        # The PI is a child item in ItemJSON, not a data field.
        for child in item.get("children", []) if isinstance(item, dict) else []:
            if isinstance(child, dict) and child.get("field") == "PI" and child.get("items"):
                pi = child["items"][0].get("data_fields", {})
                row.setdefault("pi_firstname", str(pi.get("firstname", "")))
                row.setdefault("pi_lastname", str(pi.get("lastname", "")))
        return tables.project(row)

    async def prearchive_code(self, project_id: str) -> int:
        """0 prearchive, 4 auto-archive, 5 auto-archive overwriting (xnat-api.md §7.1)."""
        ctx = self.context(f"read the prearchive setting of {project_id}", project=project_id)
        reply = await self.request("GET", f"/data/projects/{_q(project_id)}/prearchive_code", ctx)
        text = reply.text.strip().strip('"')
        try:
            return int(text)
        except ValueError:
            raise ProtocolError(
                f"Project {project_id}: prearchive code {text[:40]!r} is not a number."
            ) from None

    # ---------------------------------------------------------------- settings

    async def _config_contents(self, path: str, ctx: ErrorContext) -> str | None:
        """``?contents=true&accept-not-found=true``: text, or None when unset/disabled."""
        reply = await self.request(
            "GET",
            path,
            ctx,
            params={"contents": "true", "accept-not-found": "true"},
            ok=(200, 204, 404),
        )
        if reply.status != 200:
            return None
        return reply.text

    async def _config_row(self, path: str, ctx: ErrorContext) -> Mapping[str, str] | None:
        """First row of the config table (``?format=json``), or None when missing."""
        reply = await self.request(
            "GET",
            path,
            ctx,
            params={"format": "json", "accept-not-found": "true"},
            ok=(200, 204, 404),
        )
        if reply.status != 200 or not reply.text.strip():
            return None
        found = tables.rows(reply.json(), path)
        return found[0] if found else None

    async def project_settings(self, project_id: str) -> ProjectSettings:
        """Everything that decides how an upload to ``project_id`` behaves, fetched at once.

        Reads exactly what the Desktop Client reads (xnat-api.md §7.2). Optional settings the
        user may not read (403) fall back to XNAT's defaults and are listed in ``warnings``.
        """
        pid = _q(project_id)
        ctx = self.context(f"read the settings of project {project_id}", project=project_id)
        warnings: list[str] = []

        # Given what to read, not a coroutine made in advance: one cancelled before its
        # first step (the app closing meanwhile) would leave that one never awaited.
        async def optional(
            read: Callable[[str, ErrorContext], Awaitable[Any]], path: str, what: str
        ) -> Any:
            try:
                return await read(path, ctx)
            except PermissionDenied:
                warnings.append(f"{what}: not readable by {self.username}; default assumed")
                return None

        site = "/data/config"
        proj = f"/data/projects/{pid}/config"
        results = await gather_or_cancel(
            self.project(project_id),
            self.prearchive_code(project_id),
            optional(
                self._config_contents,
                f"{site}/applet/allow-create-subject",
                "site allow-create-subject",
            ),
            optional(
                self._config_contents, f"{proj}/applet/allow-create-subject", "allow-create-subject"
            ),
            optional(
                self._config_contents, f"{proj}/applet/allow-bulk-upload", "allow-bulk-upload"
            ),
            optional(self._config_contents, f"{site}/applet/require-date", "site require-date"),
            optional(self._config_contents, f"{proj}/applet/require-date", "require-date"),
            optional(
                self._config_contents,
                f"{proj}/applet/default-subject-labeling-scheme",
                "subject labeling",
            ),
            optional(
                self._config_contents,
                f"{proj}/applet/default-session-labeling-scheme",
                "session labeling",
            ),
            optional(self._config_row, f"{site}/seriesImportFilter", "site series filter"),
            optional(
                self._config_row, f"{proj}/seriesImportFilter/config", "project series filter"
            ),
            optional(self._config_row, f"{site}/anon/script", "site anon script"),
            optional(self._config_row, f"{proj}/anon/projects/{pid}", "project anon script"),
            optional(self._config_contents, f"{site}/tracers/tracers", "site tracers"),
            optional(self._config_contents, f"{proj}/tracers/tracers", "project tracers"),
        )
        (
            _project,
            code,
            site_create,
            proj_create,
            bulk,
            site_date,
            proj_date,
            subj_scheme,
            sess_scheme,
            site_filter_row,
            proj_filter_row,
            site_anon_row,
            proj_anon_row,
            site_tracers,
            proj_tracers,
        ) = results

        def flag(value: str | None) -> bool | None:
            text = (value or "").strip().lower()
            if not text:
                return None
            return text not in ("false", "0", "no")

        allow_create = flag(proj_create)
        if allow_create is None:
            allow_create = flag(site_create)
        require_date = flag(proj_date)
        if require_date is None:
            require_date = flag(site_date)
        tracers_text = (proj_tracers or "").strip() or (site_tracers or "").strip()
        return ProjectSettings(
            project=project_id,
            prearchive_code=code,
            allow_create_subject=True if allow_create is None else allow_create,
            allow_bulk_upload=flag(bulk) is not False,
            require_date=bool(require_date),
            subject_labeling_scheme=(subj_scheme or "").strip() or "manual",
            session_labeling_scheme=(sess_scheme or "").strip() or "auto",
            site_filter=_filter(site_filter_row, "site"),
            project_filter=_filter(proj_filter_row, f"project {project_id}"),
            site_anon=_anon(site_anon_row, "site"),
            project_anon=_anon(proj_anon_row, f"project {project_id}"),
            tracers=tuple(tracers_text.split()),
            warnings=tuple(warnings),
        )

    # ---------------------------------------------------------------- subjects

    async def subjects(self, project_id: str) -> list[Subject]:
        ctx = self.context(
            f"list the subjects of {project_id}",
            project=project_id,
            permission=f"read access to the subjects of project {project_id}",
        )
        payload = await self.get_json(
            f"/data/projects/{_q(project_id)}/subjects",
            ctx,
            {"columns": "ID,label,project,insert_date,insert_user,URI"},
        )
        return [tables.subject(r) for r in tables.rows(payload, "subjects")]

    async def create_subject(
        self, project_id: str, label: str, *, fields: Mapping[str, str] | None = None
    ) -> SubjectResult:
        """``PUT .../subjects/LABEL``: created (201) or already there (200); idempotent."""
        ctx = self.context(
            f"create subject {label} in {project_id}",
            project=project_id,
            permission=f"permission to create subjects in project {project_id}",
        )
        params: dict[str, str] = {"event_reason": "xnat-tui upload"}
        params.update(fields or {})
        reply = await self.request(
            "PUT",
            f"/data/projects/{_q(project_id)}/subjects/{_q(label)}",
            ctx,
            params=params,
            ok=(200, 201),
        )
        return SubjectResult(id=reply.text.strip(), label=label, created=reply.status == 201)

    # ---------------------------------------------------------------- experiments

    async def experiments(
        self, project_id: str, *, subject: str = "", label: str = ""
    ) -> list[Experiment]:
        """Sessions of a project (or of one subject) with UID, subject label, date, modality."""
        base = f"/data/projects/{_q(project_id)}"
        if subject:
            base += f"/subjects/{_q(subject)}"
        ctx = self.context(
            f"list the sessions of {project_id}",
            project=project_id,
            not_found=(
                f"subject {subject} does not exist in project {project_id}, or project "
                f"{project_id} is not visible to user {self.username}"
                if subject
                else ""
            ),
        )
        params: dict[str, str] = {"columns": EXPERIMENT_COLUMNS}
        if label:
            params["label"] = label
        payload = await self.get_json(f"{base}/experiments", ctx, params)
        found = [tables.experiment(r) for r in tables.rows(payload, "experiments")]
        for i, exp in enumerate(found):
            if not exp.project:
                found[i] = replace(exp, project=project_id)
        if label:
            # The server filter accepts wildcards and may ignore case; labels are exact.
            found = [e for e in found if e.label == label]
        return found

    async def find_experiment(self, project_id: str, label: str) -> Experiment | None:
        found = await self.experiments(project_id, label=label)
        return found[0] if found else None

    # ---------------------------------------------------------------- scans and files

    async def scans(self, experiment_uri: str) -> list[RemoteScan]:
        """Scans of an archived session (``/data/experiments/ID`` or the archive path)."""
        uri = data_uri(experiment_uri)
        ctx = self.context("list scans", not_found=f"session {uri} does not exist or is hidden")
        payload = await self.get_json(f"{uri}/scans", ctx)
        return [tables.scan(r) for r in tables.rows(payload, "scans")]

    async def scan_files(
        self, experiment_uri: str, scan_id: str, resource: str = "DICOM"
    ) -> list[RemoteFile]:
        """Files with sizes and MD5 digests (``digest`` column) of one scan resource."""
        uri = data_uri(experiment_uri)
        ctx = self.context(
            f"list files of scan {scan_id}",
            not_found=f"scan {scan_id} of {uri} has no {resource} resource",
        )
        payload = await self.get_json(
            f"{uri}/scans/{_q(scan_id)}/resources/{_q(resource)}/files", ctx
        )
        return [tables.remote_file(r) for r in tables.rows(payload, "files")]

    async def session_files(
        self, uri: str, resource: str = "DICOM", *, concurrency: int = 4
    ) -> dict[str, list[RemoteFile]]:
        """scan ID → files of an archived *or* prearchived session, for verification."""
        target = data_uri(uri)
        in_prearchive = "/prearchive/" in target
        if in_prearchive:
            scan_ids = [s.id for s in await self.prearchive_scans(target)]
        else:
            scan_ids = [s.id for s in await self.scans(target)]
        limit = asyncio.Semaphore(max(1, concurrency))

        async def one(scan_id: str) -> tuple[str, list[RemoteFile]]:
            async with limit:
                try:
                    if in_prearchive:
                        return scan_id, await self.prearchive_files(target, scan_id, resource)
                    return scan_id, await self.scan_files(target, scan_id, resource)
                except NotFound:
                    return scan_id, []

        return dict(await gather_or_cancel(*(one(s) for s in scan_ids)))

    # ---------------------------------------------------------------- import and commit

    async def import_zip(
        self,
        body: Body,
        *,
        project: str,
        subject: str = "",
        session: str = "",
        overwrite: str = "none",
        prevent_auto_commit: bool = True,
        source: str = "uploader",
        rename: bool = True,
        prevent_anon: bool = False,
        dest: str = "",
        auto_archive: bool | None = None,
        ignore_unparsable: bool | None = None,
        overwrite_files: bool = False,
        visit: str = "",
        subtype: str = "",
        timezone: str = "",
        quarantine: bool | None = None,
        trigger_pipelines: bool | None = None,
        import_handler: str = "DICOM-zip",
        content_length: int | None = None,
        extra: Mapping[str, str] | None = None,
        http_timeout: aiohttp.ClientTimeout | None = None,
        content_type: str = "application/zip",
    ) -> ImportResult:
        """``POST /data/services/import`` with one zip streamed as the body (§5).

        ``body`` may be bytes, an async iterable of byte chunks, a zero-argument callable
        returning a fresh async iterable (lets a 401 mid-batch be retried transparently), or
        an aiohttp payload. With a one-shot stream an expired session raises
        :class:`SessionRenewed` (retriable) after renewing it. An exception raised by the
        stream itself (a vanished source file) propagates unchanged.

        ``content_type`` names the body's format: XNAT derives the upload's name from it
        (``application/x-tar`` → ``.tar``, ``application/x-gtar`` → ``.tar.gz``; not
        ``application/x-gzip``, which becomes an unknown ``.gzip``), xnat-api-2.md §C.3.
        """
        if overwrite not in OVERWRITE_MODES:
            raise ValueError(f"overwrite must be one of {OVERWRITE_MODES}, not {overwrite!r}")
        params: list[tuple[str, str | bool | None]] = [
            ("import-handler", import_handler),
            # No project: XNAT routes by the DICOM headers, possibly to Unassigned (§8).
            ("PROJECT_ID", project or None),
            ("SUBJECT_ID", subject or None),
            ("EXPT_LABEL", session or None),
            # Absent means "never merge into an archived session" (xnat-api.md §5.2).
            ("overwrite", None if overwrite == "none" else overwrite),
            ("overwrite_files", True if overwrite_files else None),
            ("rename", True if rename else None),
            ("prevent_anon", True if prevent_anon else None),
            ("prevent_auto_commit", True if prevent_auto_commit else None),
            ("SOURCE", source or None),
            ("dest", dest or None),
            ("AA", auto_archive),
            ("Ignore-Unparsable", ignore_unparsable),
            ("VISIT", visit or None),
            ("SUBTYPE", subtype or None),
            ("TIMEZONE", timezone or None),
            ("quarantine", quarantine),
            ("triggerPipelines", trigger_pipelines),
        ]
        params.extend((extra or {}).items())
        headers = {"Content-Type": content_type}
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        ctx = self.context(
            f"upload to project {project}" if project else "upload (routed by DICOM headers)",
            project=project,
            permission=f"permission to upload to project {project}",
            # Unknown projects fall back to Unassigned; a 404 means the handler is missing.
            not_found=f"this server has no import service or no {import_handler!r} handler",
        )
        reply = await self.request(
            "POST",
            "/data/services/import",
            ctx,
            params=params,
            body=body,
            headers=headers,
            ok=(200, 201),
            http_timeout=http_timeout,
        )
        return ImportResult(uris=_uris(reply.text), status=reply.status)

    async def commit(
        self,
        uri: str,
        *,
        source: str = "uploader",
        auto_archive: bool | None = None,
        params: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> CommitResult:
        """Build the prearchive session; archives it when the project/params say so.

        301 → archived (``uri`` = archive path); 200 → left in the prearchive. A conflict
        with an archived session raises :class:`Conflict` with XNAT's reason.
        """
        target = data_uri(uri)
        project, _ts, folder = prearchive_parts(target)
        ctx = self.context(
            f"commit session {folder} in {project}",
            project=project,
            permission=f"edit access to project {project}",
            not_found=f"prearchive session {target} no longer exists (archived, moved or deleted)",
        )
        query: list[tuple[str, str | bool | None]] = [
            ("action", "commit"),
            ("SOURCE", source or None),
            ("AA", auto_archive),
        ]
        query.extend((params or {}).items())
        reply = await self.request(
            "POST", target, ctx, params=query, json_body=dict(fields or {}), ok=(200, 301, 302, 303)
        )
        location = _first_uri(reply)
        archived = reply.status in (301, 302, 303) or "/archive/" in location
        return CommitResult(archived=archived, uri=location or target, status=reply.status)

    async def archive(
        self,
        src: str,
        *,
        overwrite: str = "none",
        project: str = "",
        subject: str = "",
        label: str = "",
        overwrite_files: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> ArchiveResult:
        """``POST /data/services/archive`` one prearchive session, optionally relabelled."""
        src_project, _ts, folder = prearchive_parts(data_uri(src))
        if overwrite not in OVERWRITE_MODES:
            raise ValueError(f"overwrite must be one of {OVERWRITE_MODES}, not {overwrite!r}")
        target_project = project or src_project
        params: list[tuple[str, str | bool | None]] = [
            ("src", _src(src)),
            ("overwrite", None if overwrite == "none" else overwrite),
            ("overwrite_files", True if overwrite_files else None),
        ]
        if project or subject or label:
            dest = f"/archive/projects/{target_project}"
            if subject:
                dest += f"/subjects/{subject}"
                if label:
                    dest += f"/experiments/{label}"
            params.append(("dest", dest))
            params.append(("project", project or None))
            params.append(("subject_ID", subject or None))
            params.append(("label", label or None))
        params.extend((extra or {}).items())
        ctx = self.context(
            f"archive {folder} from the prearchive of {src_project}",
            project=target_project,
            permission=f"edit access to project {target_project}",
            not_found=f"prearchive session {data_uri(src)} does not exist",
        )
        reply = await self.request(
            "POST", "/data/services/archive", ctx, params=params, ok=(200, 301, 302, 303)
        )
        return ArchiveResult(uri=_first_uri(reply), status=reply.status)

    # ---------------------------------------------------------------- prearchive

    async def prearchive(self, project: str | Sequence[str] | None = None) -> list[PrearchiveEntry]:
        """Prearchive sessions of one or more projects, or of every project you can edit."""
        if project is None or project == "" or (not isinstance(project, str) and not project):
            path, what, pid = "/data/prearchive/projects", "list the prearchive", ""
        else:
            ids = [project] if isinstance(project, str) else list(project)
            pid = ",".join(ids)
            path = f"/data/prearchive/projects/{','.join(_q(p) for p in ids)}"
            what = f"list the prearchive of {pid}"
        ctx = self.context(
            what, project=pid, permission=f"access to the prearchive of project {pid}"
        )
        payload = await self.get_json(path, ctx)
        return [tables.prearchive_entry(r) for r in tables.rows(payload, "prearchive")]

    def _prearc_ctx(self, action: str, uri: str, *, project: str = "") -> ErrorContext:
        src_project, _ts, folder = prearchive_parts(uri)
        target = project or src_project
        return self.context(
            f"{action} prearchive session {folder} of {src_project}",
            project=target,
            permission=f"edit access to project {target}",
            not_found=(
                f"prearchive session {data_uri(uri)} no longer exists (archived, moved or deleted?)"
            ),
        )

    async def prearchive_entry(self, uri: str) -> PrearchiveEntry:
        target = data_uri(uri)
        payload = await self.get_json(target, self._prearc_ctx("read", target))
        found = tables.rows(payload, "prearchive session")
        if not found:
            raise NotFound(f"Prearchive session {target} has no row.", status=200, url=target)
        return tables.prearchive_entry(found[0])

    async def prearchive_scans(self, uri: str) -> list[PrearchiveScan]:
        target = data_uri(uri)
        payload = await self.get_json(f"{target}/scans", self._prearc_ctx("list scans of", target))
        return [tables.prearchive_scan(r) for r in tables.rows(payload, "prearchive scans")]

    async def prearchive_resources(self, uri: str, scan_id: str) -> list[Resource]:
        target = data_uri(uri)
        payload = await self.get_json(
            f"{target}/scans/{_q(scan_id)}/resources", self._prearc_ctx("list resources of", target)
        )
        return [tables.resource(r) for r in tables.rows(payload, "prearchive resources")]

    async def prearchive_files(
        self, uri: str, scan_id: str, resource: str = "DICOM"
    ) -> list[RemoteFile]:
        target = data_uri(uri)
        payload = await self.get_json(
            f"{target}/scans/{_q(scan_id)}/resources/{_q(resource)}/files",
            self._prearc_ctx("list files of", target),
        )
        return [tables.remote_file(r) for r in tables.rows(payload, "prearchive files")]

    async def prearchive_last_log(self, uri: str) -> str:
        target = data_uri(uri)
        reply = await self.request(
            "GET",
            f"{target}/logs/last",
            self._prearc_ctx("read the log of", target),
            ok=(200, 204, 404),
        )
        return reply.text.strip() if reply.status == 200 else ""

    async def _prearchive_action(
        self, uri: str, action: str, verb: str, *, project: str = "", **params: str
    ) -> Reply:
        target = data_uri(uri)
        query: dict[str, str] = {"action": action, **params}
        return await self.request(
            "POST",
            target,
            self._prearc_ctx(verb, target, project=project),
            params=query,
            ok=(200, 301, 302, 303),
        )

    async def prearchive_move(self, uri: str, new_project: str) -> str:
        """Move to another project's prearchive; returns the new URI."""
        reply = await self._prearchive_action(
            uri, "move", "move", project=new_project, newProject=new_project
        )
        moved = _first_uri(reply)
        if not moved:
            _p, ts, folder = prearchive_parts(data_uri(uri))
            moved = f"/data/prearchive/projects/{new_project}/{ts}/{folder}"
        return moved

    async def prearchive_rebuild(self, uri: str) -> str:
        reply = await self._prearchive_action(uri, "build", "rebuild")
        return _first_uri(reply) or data_uri(uri)

    async def prearchive_delete(self, uri: str) -> None:
        target = data_uri(uri)
        await self.request("DELETE", target, self._prearc_ctx("delete", target), ok=(200, 204))

    # ---------------------------------------------------------------- alias tokens

    async def issue_token(self) -> AliasToken:
        """A new alias token for this user, for batch jobs that must not hold the password."""
        ctx = self.context("issue an alias token")
        data = (await self.request("GET", "/data/services/tokens/issue", ctx)).json()
        try:
            alias, secret = str(data["alias"]), str(data["secret"])
        except (KeyError, TypeError):
            raise ProtocolError("The server's alias token reply has no alias/secret.") from None
        expires = data.get("estimatedExpirationTime", 0) if isinstance(data, dict) else 0
        return AliasToken(alias, secret, int(expires) if isinstance(expires, int | float) else 0)

    async def invalidate_token(self, alias: str) -> None:
        ctx = self.context(
            "invalidate the alias token", not_found=f"no alias token {alias} on this server"
        )
        await self.request("GET", f"/data/services/tokens/invalidate/{_q(alias)}", ctx)

    # ---------------------------------------------------------------- raw access


def _first_uri(reply: Reply) -> str:
    found = _uris(reply.text)
    for uri in found:
        if uri.startswith(("/data/", "/REST/", "/prearchive/", "/archive/", "http")):
            return _strip_server(data_uri(uri))
    if reply.location:
        return _strip_server(reply.location)
    return ""


def _strip_server(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        after = uri.split("://", 1)[1]
        path = "/" + after.split("/", 1)[1] if "/" in after else "/"
        index = path.find("/data/")
        return path[index:] if index >= 0 else path
    return uri


def _filter(row: Mapping[str, str] | None, scope: str) -> SeriesImportFilter | None:
    if row is None:
        return None
    contents = row.get("contents", "")
    if not contents.strip():
        return None
    enabled = row.get("status", "enabled").strip().lower() != "disabled"
    return SeriesImportFilter.parse(contents, scope, status_enabled=enabled)


def _anon(row: Mapping[str, str] | None, scope: str) -> AnonScript | None:
    if row is None:
        return None
    contents = row.get("contents", "")
    if not contents.strip():
        return None
    enabled = row.get("status", "enabled").strip().lower() != "disabled"
    return AnonScript(scope=scope, contents=contents, enabled=enabled)
