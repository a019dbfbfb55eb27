"""The engine's :class:`ServerPort` on top of the real ``XnatClient``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from xnat_tui.transfer.anon import script_problems
from xnat_tui.transfer.server import (
    BodyFactory,
    CommitOutcome,
    ProjectInfo,
    RemoteFile,
    RemoteSession,
)
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.transport import gather_or_cancel

if TYPE_CHECKING:
    from xnat_tui.dicom.dicomedit import Script


class XnatPort:
    """Adapts :class:`XnatClient` (typed XNAT calls) to what the engine needs."""

    def __init__(self, client: XnatClient) -> None:
        self.client = client

    @property
    def server_url(self) -> str:
        return self.client.server

    @property
    def username(self) -> str:
        return self.client.user

    async def project_info(self, project: str) -> ProjectInfo:
        s = await self.client.project_settings(project)
        warnings = list(s.warnings)
        for f in (s.site_filter, s.project_filter):
            if f is not None and f.enabled and not f.evaluable:
                warnings.append(
                    f"{f.scope} series filter mode {f.mode!r} cannot be checked before upload"
                )
        anon = any(a is not None and a.enabled for a in (s.site_anon, s.project_anon))
        problems, scripts = script_problems(s)
        return ProjectInfo(
            id=project,
            allow_create_subject=s.allow_create_subject,
            allow_bulk_upload=s.allow_bulk_upload,
            prearchive_code=s.prearchive_code,
            series_filters=[f for f in s.filters if f.enabled],
            anon_script=anon,
            warnings=warnings,
            anon_problems=problems,
            anon_variables=_variables(scripts),
        )

    async def subjects(self, project: str) -> set[str]:
        return {s.label for s in await self.client.subjects(project)}

    async def sessions(self, project: str) -> list[RemoteSession]:
        experiments, entries = await gather_or_cancel(
            self.client.experiments(project), self.client.prearchive(project)
        )
        out = [
            RemoteSession(
                label=e.label,
                subject=e.subject_label,
                study_uid=e.study_uid,
                location="archive",
                # The same form the commit answers with, so journal and receipts agree.
                uri=(
                    f"/data/archive/projects/{project}/subjects/{e.subject_label}"
                    f"/experiments/{e.label}"
                    if e.subject_label
                    else e.uri or f"/data/projects/{project}/experiments/{e.label}"
                ),
                project=project,
            )
            for e in experiments
        ]
        out += [
            RemoteSession(
                label=p.name or p.folder_name,
                subject=p.subject,
                study_uid=p.tag,
                location="prearchive",
                uri=p.uri,
                status=p.status,
                project=p.project,
            )
            for p in entries
            if p.project == project
        ]
        return out

    async def import_series(
        self,
        body: BodyFactory,
        *,
        project: str,
        subject: str,
        session: str,
        overwrite: str,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        params = dict(extra or {})
        prevent_anon = params.pop("prevent_anon", "") == "true"
        result = await self.client.import_zip(
            body,
            project=project,
            subject=subject,
            session=session,
            overwrite=overwrite,
            prevent_anon=prevent_anon,
            content_length=getattr(body, "content_length", None),
            # An as-is archive's body names its format (tar, tar.gz); else a zip.
            content_type=getattr(body, "content_type", None) or "application/zip",
            extra=params,
        )
        return result.uri

    async def commit(self, uri: str, *, auto_archive: bool | None) -> CommitOutcome:
        if auto_archive is False:
            # An auto-archiving project archives on commit whatever AA says (the row's
            # own setting wins, xnat-api.md §6.3); "build" makes the session ready and
            # leaves it in the prearchive, which is what the user asked for.
            built = await self.client.prearchive_rebuild(uri)
            return CommitOutcome(False, built)
        result = await self.client.commit(uri, auto_archive=auto_archive)
        return CommitOutcome(result.archived, result.uri)

    async def session_files(self, session: RemoteSession) -> dict[str, list[RemoteFile]]:
        return await self.client.session_files(session.uri)


def _variables(scripts: list[Script]) -> list[tuple[str, str]]:
    """The variables a user must give the project's anonymization scripts. DicomEdit (and
    with it pydicom, ~0.2 s) is loaded only when the project has a script: every command
    that logs in imports this module."""
    if not scripts:
        return []
    from xnat_tui.dicom.dicomedit import required_variables

    return [(r.name, r.description) for r in required_variables(scripts) if not r.hidden]
