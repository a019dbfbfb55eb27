"""Turn the scanner's model (``xnat_tui.dicom.model.Session``) into planner input."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from xnat_tui.dicom.model import Session, file_order
from xnat_tui.transfer.types import SourceFile, SourceSeries, SourceSession

if TYPE_CHECKING:
    from xnat_tui.dicom.dicomedit import BurnedInVerdict
    from xnat_tui.dicom.model import Scan


def from_dicom(session: Session, *, files: bool = True, burned_in: bool = True) -> SourceSession:
    """Copy what the engine needs; later edits of the scan result do not leak into jobs.

    ``files=False`` leaves the series' file lists empty: enough to validate a target
    or apply import filters (headers and labels only) without copying and sorting
    every file of the session, which the TUI does on every keystroke and scan batch.
    ``burned_in=False`` leaves each series' burned-in warnings empty, for a caller that
    never reads them (sending over DICOM): the verdict lives in the DicomEdit package,
    whose import costs that command ~40 ms of start-up.
    """
    verdict = _burned_in_verdict() if burned_in else None
    attributes: dict[str, str] = {
        "PatientID": session.patient_id,
        "PatientName": session.patient_name,
        "StudyDate": session.study_date,
        "StudyTime": session.study_time,
        "StudyDescription": session.study_description,
        "AccessionNumber": session.accession_number,
        "Modality": session.modality,
    }
    for key, value in session.fields.items():
        attributes.setdefault(key, value)
    routing: dict[str, str] = {}
    proposal = session.routing_proposal
    if proposal is not None:
        routing = {
            "project": proposal.project,
            "subject": proposal.subject,
            "session": proposal.session,
            "source": proposal.source,
        }
    series = [
        SourceSeries(
            series_instance_uid=scan.series_instance_uid,
            series_number=scan.series_number,
            description=scan.series_description,
            modality=scan.modality,
            files=[
                SourceFile(f.path_str, f.size, f.mtime, f.sop_instance_uid)
                for f in sorted(scan.files, key=file_order)
            ]
            if files
            else [],
            headers={
                **scan.fields,
                "SeriesDescription": scan.series_description,
                "Modality": scan.modality,
                "SeriesInstanceUID": scan.series_instance_uid,
                **(
                    {"SeriesNumber": str(scan.series_number)}
                    if scan.series_number is not None
                    else {}
                ),
            },
            burned_in=tuple(verdict(scan, "basic").reasons) if verdict is not None else (),
        )
        for scan in session.sorted_scans()
    ]
    return SourceSession(
        study_instance_uid=session.study_instance_uid,
        series=series,
        attributes=attributes,
        routing=routing,
        root=session.root,
    )


def _burned_in_verdict() -> Callable[[Scan, str], BurnedInVerdict]:
    from xnat_tui.dicom.dicomedit import burned_in_verdict

    return burned_in_verdict
