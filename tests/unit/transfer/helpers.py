"""Small on-disk sessions of fake DICOM files for engine tests (FakeServer parses them)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.transfer.fake import make_fake_dicom
from xnat_tui.transfer import JobRequest, SourceFile, SourceSeries, SourceSession


def make_session(
    root: Path,
    *,
    study: str = "1.2.3",
    patient: str = "PAT1",
    series: tuple[tuple[str, str], ...] = (("1", "T1"), ("2", "T2")),
    files_per_series: int = 3,
    size: int = 2000,
) -> SourceSession:
    out: list[SourceSeries] = []
    for number, desc in series:
        uid = f"{study}.{number}"
        folder = root / study / number
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for i in range(files_per_series):
            p = folder / f"IM{i:04d}.dcm"
            p.write_bytes(make_fake_dicom(study, uid, number, desc, i, size))
            st = p.stat()
            files.append(SourceFile(p, st.st_size, st.st_mtime, f"{uid}.{i}"))
        out.append(SourceSeries(uid, int(number), desc, "MR", files))
    return SourceSession(
        study_instance_uid=study,
        series=out,
        attributes={
            "PatientID": patient,
            "PatientName": "Doe^Jane",
            "Modality": "MR",
            "StudyDate": "20240101",
        },
        root=root / study,
    )


def request_for(
    session: SourceSession,
    *,
    project: str = "P",
    label: str | None = None,
    **kw: object,
) -> JobRequest:
    """A request as the application layer would make it: subject = PatientID and
    session label ``<subject>_<Modality>_1`` unless given (engine tests need no templates)."""
    subject = session.attributes["PatientID"]
    return JobRequest(
        session=session,
        project=project,
        subject=subject,
        label=label if label is not None else f"{subject}_{session.attributes['Modality']}_1",
        **kw,  # type: ignore[arg-type]
    )
