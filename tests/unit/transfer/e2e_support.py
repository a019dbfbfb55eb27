"""Shared by the upload e2e tests: synthetic sessions, CLI runs, server-side checks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from xnat_tui.dicom.synthetic import SeriesSpec, WrittenStudy, write_study
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

ROOT = Path(__file__).resolve().parents[3]


def write_sessions(
    dest: Path, prefix: str, count: int, series: int = 2, files: int = 3
) -> list[WrittenStudy]:
    out = []
    for i in range(count):
        out.append(
            write_study(
                dest / f"{prefix}{i:02d}",
                patient_id=f"{prefix}{i:02d}",
                series=[SeriesSpec("MR", n + 1, f"S{n + 1}", files) for n in range(series)],
            )
        )
    return out


def digests(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def cli_env(password: str = "alice") -> dict[str, str]:
    env = dict(os.environ)
    env["XNAT_PASS"] = password
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def cli(
    *args: str, password: str = "alice", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xnat_tui", *args],
        capture_output=True,
        text=True,
        env=cli_env(password),
        cwd=ROOT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def spawn(*args: str, password: str = "alice") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "xnat_tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(password),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


async def _server_state(
    url: str, project: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    async with XnatClient(Credentials(url, "alice", "alice")) as client:
        exps = await client.experiments(project)
        pre = await client.prearchive(project)
        return (
            [(e.label, e.study_uid) for e in exps],
            [(p.name, p.tag, p.status) for p in pre],
        )


def server_state(
    url: str, project: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """(archived (label, uid), prearchive (name, uid, status)) of a project."""
    return asyncio.run(_server_state(url, project))
