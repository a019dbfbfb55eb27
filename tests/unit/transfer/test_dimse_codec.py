"""The sender's DIMSE command sets against pynetdicom's encoder, and the meta shortcut
against the full File Meta parse, on our files and pydicom's own test files."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import data_manager
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import decode, encode, split_dataset

from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.cstore import read_meta
from xnat_tui.transfer.cstore_link import (
    _FileBody,
    _known_meta_end,
    parse_response,
    store_command,
)

MR = "1.2.840.10008.5.1.4.1.1.4"


@pytest.mark.parametrize("instance", ["1.2.3.4", "1.2.3.45", "2.25." + "9" * 58])
def test_store_command_matches_pynetdicom(instance: str) -> None:
    ours = decode(BytesIO(store_command(513, MR, instance)), True, True)
    theirs = {
        "AffectedSOPClassUID": MR,
        "AffectedSOPInstanceUID": instance,
        "CommandField": 0x0001,
        "MessageID": 513,
        "Priority": 0,
    }
    assert {k: ours[k].value for k in theirs} == theirs
    assert ours.CommandDataSetType != 0x0101  # a data set follows
    # The group length is the length of the rest of the group.
    raw = store_command(513, MR, instance)
    assert ours.CommandGroupLength == len(raw) - 12


def test_response_read_as_pynetdicom_writes_it() -> None:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 77
    rsp.AffectedSOPClassUID = MR
    rsp.AffectedSOPInstanceUID = "1.2.3.4"
    rsp.Status = 0xA700
    rsp.ErrorComment = "disk full"
    msg = C_STORE_RSP()  # the command set pynetdicom puts on the wire
    msg.primitive_to_message(rsp)
    raw = encode(msg.command_set, True, True)
    assert raw is not None
    got = parse_response(raw)
    assert (got.command_field, got.responding_to, got.status) == (0x8001, 77, 0xA700)
    assert got.comment == "disk full"


def test_response_without_status_reads_as_absent() -> None:
    got = parse_response(b"\x00\x00\x00\x01\x02\x00\x00\x00\x01\x80")
    assert (got.command_field, got.status, got.responding_to) == (0x8001, -1, -1)


def _part10_files(tmp_path: Path) -> list[Path]:
    write_study(tmp_path / "ours", patient_id="P", series=[SeriesSpec("MR", 1, "T1", 3)])
    files = sorted((tmp_path / "ours").rglob("*.dcm"))
    # pydicom's own test files, from disk (get_testdata_files() may download).
    for name in sorted(Path(data_manager.DATA_ROOT, "test_files").rglob("*.dcm")):
        with open(name, "rb") as fh:
            if fh.read(132)[128:] == b"DICM":
                files.append(name)
    return files


def test_meta_shortcut_agrees_with_the_full_parse(tmp_path: Path) -> None:
    checked = 0
    for path in _part10_files(tmp_path):
        head = path.read_bytes()[:8192]
        parsed = read_meta(head)
        if parsed is None:
            continue
        values, offset = parsed
        uid = values.get(0x0003, b"").decode("ascii", "replace").strip(" \0")
        end = _known_meta_end(head, uid)
        assert end in (0, offset), path
        checked += end == offset
        # Never taken for another instance's UID.
        assert _known_meta_end(head, uid + "9") == 0
    assert checked >= 20


def test_file_body_starts_where_pydicom_says_the_data_set_starts(tmp_path: Path) -> None:
    opened = 0
    for path in _part10_files(tmp_path):
        try:
            ds = dcmread(path, stop_before_pixels=True)
            _meta, start = split_dataset(path)
        except Exception:
            continue  # files pydicom itself cannot read are not this test's subject
        uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", ""))
        try:
            got_uid, body = _FileBody.open(path, uid)
        except ValueError:
            continue
        try:
            assert body.offset == start, path
            data = bytes(body.read(body.size))
        finally:
            body.close()
        assert got_uid == uid
        assert data == path.read_bytes()[start:]
        opened += 1
    assert opened >= 20
