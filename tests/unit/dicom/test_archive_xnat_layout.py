"""XNAT's own session layout, as its download writes it (xnat-api-2.md §C.4)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.archives import make_archive
from tests.unit.transfer.e2e_support import cli
from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.sandbox.server import SandboxThread


def _download(tmp_path: Path) -> list[tuple[str, Path | bytes]]:
    study = write_study(
        tmp_path / "src",
        patient_id="P9",
        series=[SeriesSpec("MR", 1, "T1", 2), SeriesSpec("MR", 2, "T2", 2)],
    )
    items: list[tuple[str, Path | bytes]] = []
    for s in study.series:
        for p in s.paths:
            items.append((f"MR_0042/scans/{s.series_number}/resources/DICOM/files/{p.name}", p))
        items.append(
            (
                f"MR_0042/scans/{s.series_number}/resources/NIFTI/files/s{s.series_number}.nii.gz",
                b"\x1f\x8b nifti",
            )
        )
        n = s.series_number
        items.append((f"MR_0042/scans/{n}/resources/SNAPSHOTS/files/s{n}.gif", b"GIF89a"))
    return items


def test_the_layout_proposes_the_label_and_skips_other_resources(tmp_path: Path) -> None:
    archive = make_archive(_download(tmp_path), tmp_path / "MR_0042.zip")
    summary = scan_all([archive], use_cache=False, workers=1)
    (session,) = summary.sessions
    assert session.file_count == 4
    assert session.routing_proposal is not None
    assert session.routing_proposal.session == "MR_0042"
    skipped = sorted((p.path.split("!", 1)[1], p.detail) for p in summary.problems)
    assert [s[0] for s in skipped] == [
        "MR_0042/scans/1/resources/NIFTI",
        "MR_0042/scans/1/resources/SNAPSHOTS",
        "MR_0042/scans/2/resources/NIFTI",
        "MR_0042/scans/2/resources/SNAPSHOTS",
    ]
    assert all("skipped, not uploaded" in d for _p, d in skipped)


def test_the_same_layout_in_a_folder(tmp_path: Path) -> None:
    for name, what in _download(tmp_path):
        dest = tmp_path / "dl" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(what if isinstance(what, bytes) else what.read_bytes())
    summary = scan_all([tmp_path / "dl"], use_cache=False, workers=1)
    (session,) = summary.sessions
    assert session.routing_proposal is not None and session.routing_proposal.session == "MR_0042"
    assert len([p for p in summary.problems if "resource" in p.detail]) == 4


def test_upload_plan_uses_the_folder_name(sandbox_thread: SandboxThread, tmp_path: Path) -> None:
    archive = make_archive(_download(tmp_path), tmp_path / "in" / "dl.zip")
    dry = cli(
        "upload", str(archive), "--server", sandbox_thread.url, "--user", "alice",
        "--project", "PILOT", "--dry-run", "--json",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    (job,) = json.loads(dry.stdout)["plan"]["jobs"]
    assert job["session"] == "MR_0042"
