"""Client-side anonymization for uploads: one Anonymizer per (project, profile).

Profiles (``--anon``): ``none`` sends files as they are (the server applies its own
site script on import); ``xnat`` applies the server's site then project scripts here
(and asks the server not to apply them again, like the Desktop Client); ``basic``
applies the built-in DICOM Basic Profile. The transform runs in the packer thread and
is deterministic, so a re-sent series carries identical bytes.
"""

from __future__ import annotations

from pathlib import Path

from xnat_tui.dicom.dicomedit import Anonymizer, Script, scripts_for_profile, server_scripts
from xnat_tui.transfer.journal import JobRecord
from xnat_tui.transfer.packer import FileTransform
from xnat_tui.transfer.server import TransferError


class AnonymizerSet:
    """Prepared once (scripts fetched and parsed) before the engine starts."""

    def __init__(self) -> None:
        self._anons: dict[tuple[str, str], Anonymizer] = {}

    def add(self, project: str, profile: str, site_project_scripts: list[Script]) -> None:
        scripts = scripts_for_profile(profile, server_scripts=site_project_scripts)
        self._anons[(project, profile)] = Anonymizer(scripts, {"project": project})

    async def prepare(self, client: object, project: str, profile: str) -> None:
        """Fetch and parse the project's scripts (``xnat`` profile) from an XnatClient."""
        if (project, profile) in self._anons or profile == "none":
            return
        scripts: list[Script] = []
        if profile == "xnat":
            settings = await client.project_settings(project)  # type: ignore[attr-defined]
            items = [
                (a.scope, a.contents, a.enabled)
                for a in (settings.site_anon, settings.project_anon)
                if a is not None
            ]
            try:
                scripts = server_scripts(items)
            except Exception as exc:
                raise TransferError(
                    f"project {project}: its anonymization script cannot be applied here: {exc}"
                ) from exc
        self.add(project, profile, scripts)

    def transform_for(self, job: JobRecord) -> FileTransform | None:
        if job.anonymization in ("", "none"):
            return None
        anon = self._anons.get((job.project, job.anonymization))
        if anon is None:
            raise TransferError(
                f"anonymization {job.anonymization!r} for {job.project} was not prepared"
            )
        if anon.is_identity:
            return None
        variables = {"project": job.project, "subject": job.subject, "session": job.label}
        return AnonTransform(anon, variables)


class AnonTransform:
    """The packer's per-file hook; ``script_hashes`` go into the job's receipt."""

    def __init__(self, anon: Anonymizer, variables: dict[str, str]) -> None:
        self.anon = anon
        self.variables = variables
        self.script_hashes = anon.script_hashes

    def __call__(self, path: Path, data: bytes) -> bytes:
        return self.anon.anonymize_bytes(data, self.variables)
