"""``xnat-tui sandbox serve|demo-data``."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests

from tests.unit.sandbox.helpers import serve_process
from xnat_tui.cli import main


def test_demo_data_writes_a_dicom_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "demo"
    assert main(["sandbox", "demo-data", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "studies" in out and str(dest) in out
    dicoms = [p for p in dest.rglob("*") if p.is_file() and p.read_bytes()[128:132] == b"DICM"]
    assert len(dicoms) > 20


def test_demo_data_refuses_a_file_as_destination(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["sandbox", "demo-data", str(target)]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["sandbox"],
        ["sandbox", "serve", "--faults", "explode"],
        ["sandbox", "serve", "--session-timeout", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert main(argv) == 2


def test_serve_runs_until_sigterm(tmp_path: Path) -> None:
    with serve_process(tmp_path / "data", "--session-timeout", "60") as (proc, url):
        r = requests.get(url + "/data/auth", auth=("admin", "admin"), timeout=10)
        assert r.status_code == 200
        assert r.text == "User 'admin' is logged in"
        assert (r.cookies.get("SESSION_EXPIRATION_TIME") or "").endswith(',60000"')
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert (tmp_path / "data" / "sandbox.db").is_file()
