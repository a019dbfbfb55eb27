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
