"""``{archive}`` in label templates: the archive a session came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnat_tui.transfer.types import SourceSession
from xnat_tui.workflow.templates import TemplateError, render_label, template_fields


def _session(root: str | None) -> SourceSession:
    return SourceSession("1.2.3", [], {"PatientID": "P1"}, root=Path(root) if root else None)


@pytest.mark.parametrize(
    ("root", "label"),
    [
        ("/d/bundle.zip!site-a/Sess 01.ZIP!scans", "Sess_01_P1"),
        ("/d/bundle.zip!x.tar.gz", "x_P1"),
        ("/d/MR_7.tgz!MR_7/scans/1", "MR_7_P1"),
        ("/d/export.tar.bz2", "export_P1"),
    ],
)
def test_archive_field(root: str, label: str) -> None:
    assert template_fields("{archive}_{PatientID}") == ["archive", "PatientID"]
    assert render_label("{archive}_{PatientID}", _session(root)) == label


def test_a_session_from_a_folder_has_no_archive() -> None:
    with pytest.raises(TemplateError, match=r"\{archive\} is empty"):
        render_label("{archive}", _session("/d/folder/MR1"))
