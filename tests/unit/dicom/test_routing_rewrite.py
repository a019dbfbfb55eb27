"""A copy rewrites the routing the DICOM carries with the same parser that reads it."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest

from tests.fixtures import dicom_transforms as T
from xnat_tui.dicom.routing import (
    Pattern,
    carries_marker,
    propose,
    rewrite_routing,
    routing_marker,
)
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.copy_routing import RoutingRewrite

SITE = Pattern(
    "StudyDescription", r"xnat://(?P<project>[\w-]+)/(?P<subject>[\w-]+)/(?P<session>[\w-]+)"
)
# A site whose convention is its own: project and subject in Study Comments.
OWN = Pattern("StudyComments", r"STUDY=(?P<project>[\w-]+);SUBJ=(?P<subject>[\w-]+)")


def test_what_the_scanner_reads_is_what_is_rewritten_and_the_rest_is_kept() -> None:
    fields = {
        "StudyDescription": "Brain xnat://PILOT/S1/E1 (repeat)",
        "StudyComments": "STUDY=PILOT;SUBJ=S1;visit 2",
        "PatientComments": "consented; project: PILOT Subject:S1",
    }
    out = rewrite_routing(fields, "NEW", "S9", "E9", [SITE, OWN])
    assert out == {
        "StudyDescription": "Brain xnat://NEW/S9/E9 (repeat)",
        "StudyComments": "STUDY=NEW;SUBJ=S9;visit 2",
        "PatientComments": "consented; project: NEW Subject:S9",
    }
    # Read back by the one parser, every proposal names the new home.
    for proposal in propose({**fields, **out}, [SITE, OWN]):
        assert proposal.project == "NEW" and proposal.subject in ("S9", "")
    assert rewrite_routing({"StudyDescription": "Brain"}, "NEW", "S", "E", [SITE]) == {}


def test_the_byte_prefilter_finds_every_convention_or_gives_up() -> None:
    marker = routing_marker([SITE, OWN])
    assert marker is not None
    assert carries_marker(b"..STUDY=P;SUBJ=S..", marker)
    assert carries_marker(b"..PROJECT: P..", marker) and carries_marker(b"XNAT://P", marker)
    assert not carries_marker(b"plain pixels and a description", marker)
    assert not carries_marker(b"plain pixels, then project: P", marker, end=12)
    # A pattern that starts with a group has no literal to look for: read every file.
    assert routing_marker([Pattern("StudyDescription", r"(?P<project>\w+)-x")]) is None


def test_only_the_header_is_searched_and_routing_there_is_always_found(tmp_path: Path) -> None:
    study = write_study(
        tmp_path,
        patient_id="P1",
        series=[SeriesSpec("MR", 1, "T1", 1, rows=256, columns=256)],
        extra={"PatientComments": "Project: PILOT Subject: S1 Session: E1"},
    )
    data = study.series[0].paths[0].read_bytes()
    pixels = data.index(b"\xe0\x7f\x10\x00")  # Pixel Data's tag
    assert pixels > 1000 and len(data) > 100_000
    out = RoutingRewrite("NEW", "S9", "E9")(data)
    assert pydicom.dcmread(io.BytesIO(out)).PatientComments == (
        "Project: NEW Subject: S9 Session: E9"
    )
    # The same words inside the pixels are pixels: the file passes unparsed and whole.
    plain = write_study(tmp_path / "plain", patient_id="P2", series=[SeriesSpec("MR", 1, "T", 1)])
    raw = bytearray(plain.series[0].paths[0].read_bytes())
    raw[-40:-20] = b"Project: X Session:Y"
    assert RoutingRewrite("NEW", "S9", "E9")(bytes(raw)) == bytes(raw)


def test_a_copy_rewrites_the_sites_own_convention_in_the_bytes(tmp_path: Path) -> None:
    study = write_study(
        tmp_path,
        patient_id="P1",
        series=[SeriesSpec("MR", 1, "T1", 1)],
        extra={"StudyComments": "STUDY=PILOT;SUBJ=PIL_900"},
    )
    data = study.series[0].paths[0].read_bytes()
    out = RoutingRewrite("STUDY_A", "SA_001", "SA_001_MR1", [OWN])(data)
    assert pydicom.dcmread(io.BytesIO(out)).StudyComments == "STUDY=STUDY_A;SUBJ=SA_001"
    assert RoutingRewrite("STUDY_A", "SA_001", "SA_001_MR1", [SITE])(data) is data


ROUTED = "Project: OLD Subject: S1 Session: E1"
REWRITTEN = "Project: NEW Subject: S9 Session: E9"


def _full_rewrite(data: bytes) -> bytes:
    """The reference: the whole file parsed, the routing set, the whole file written."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    ds.PatientComments = REWRITTEN
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


# Every transfer syntax and layout, but a deflated data set without its meta group: that
# says nowhere that it is deflated, and nothing reads it.
ENCODINGS = [
    pytest.param(ts, layout, id=f"{key}-{layout}")
    for key, ts in T.WRITABLE_SYNTAXES.items()
    for layout in T.LAYOUTS
    if not (ts == T.DEFLATED and layout in ("dicm-no-meta", "bare"))
]


@pytest.mark.parametrize(("ts", "layout"), ENCODINGS)
@pytest.mark.parametrize("name", T.ALL_BASES)
def test_a_header_only_rewrite_gives_the_files_a_full_rewrite_gives(
    name: str, ts: str, layout: str
) -> None:
    """Built and pydicom's own files, in every transfer syntax and layout: rewritten up to
    Pixel Data with the pixels passed on, each comes out as parsing and writing the
    whole file would give it (byte for byte), Deflated files included, whose routing is
    compressed out of sight of any byte search."""
    ds = T.base(name)
    ds.PatientComments = ROUTED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = T.encode(ds, ts, layout)
        got = RoutingRewrite("NEW", "S9", "E9")(data)
        assert pydicom.dcmread(io.BytesIO(got), force=True).PatientComments == REWRITTEN
        assert got == _full_rewrite(data)
