"""The sandbox server in a process of its own, for the benchmarks (loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_env(work: Path, password: str = "admin") -> dict[str, str]:
    """The environment a benchmark runs xnat-tui (and the sandbox) in: every state,
    cache and config folder under ``work`` (nothing of the user's is read or written),
    the password in XNAT_PASS, loopback traffic never sent through a proxy."""
    env = dict(os.environ)
    env.update(
        HOME=str(work / "home"),
        XDG_STATE_HOME=str(work / "state"),
        XDG_CACHE_HOME=str(work / "cache"),
        XDG_CONFIG_HOME=str(work / "config"),
        XNAT_TUI_CONFIG=str(work / "config.toml"),
        NO_PROXY="127.0.0.1,localhost",
        XNAT_PASS=password,
        PYTHONPATH=str(ROOT),
    )
    for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env.pop(k, None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    """``xnat-tui sandbox serve --demo`` on a free loopback port, started and ready.

    ``nice`` lowers its CPU priority: it stands in for a server on another machine.
    """

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, nice: int = 0) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xnat_tui",
                "sandbox",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--demo",
                # A free port for the demo's DICOM receiver: 8104 may be taken by another
                # sandbox (a developer's `make demo`), which would stop this one starting.
                "--dicom-port",
                "0",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.nice(nice)) if nice and hasattr(os, "nice") else None,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{self.url}/data/version", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # answering, even if with an error: it is up
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise SystemExit("sandbox did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
