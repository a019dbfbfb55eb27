"""The benchmarks share one environment setup (benchmarks/sandbox_process.bench_env):
every state, cache and config folder under the run's work folder, no proxy."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fixtures.benchmarks import load_benchmark_module

ROOT = Path(__file__).resolve().parents[2]


bench_env = load_benchmark_module("sandbox_process").bench_env


def test_bench_env_keeps_everything_under_the_work_folder(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    env = bench_env(tmp_path, "pw")
    for key in ("HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XNAT_TUI_CONFIG"):
        assert Path(env[key]).is_relative_to(tmp_path), key
    assert "HTTPS_PROXY" not in env and env["XNAT_PASS"] == "pw"
    assert env["PYTHONPATH"] == str(ROOT)


def test_the_benchmarks_use_the_one_setup() -> None:
    for name in ("archives.py", "upload.py", "download.py", "project_copy.py"):
        path = ROOT / "benchmarks" / name
        if not path.exists():  # a benchmark not in this checkout
            continue
        text = path.read_text()
        assert "bench_env(work)" in text, name
        assert "XDG_STATE_HOME" not in text, f"{name} sets up its own environment again"


def test_no_benchmark_script_is_named_like_a_standard_module() -> None:
    # A script's folder comes first on its import path: a benchmarks/copy.py made every
    # sibling script's 'import copy' (argparse's, pydicom's) load it instead.
    names = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    assert names & set(sys.stdlib_module_names) == set()
