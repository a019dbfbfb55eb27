"""Installing like a tool: the wheel built on a machine without a C compiler installs
into a fresh venv and works there, with the pure-Python walk.

One wheel build (~1 s) and one venv (no pip in it, ~0.1 s), all offline: the wheel is
built without build isolation by the test venv's setuptools (a [test] dependency) and
installed with ``--no-deps --no-index``; the fresh venv sees the test venv's packages
(the dependencies) through a .pth line, which adds that folder to ``sys.path`` without
running its .pth files, so the editable install of the working tree stays out of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.fixtures.dicom import SmallTree

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
NO_COMPILER = "/nonexistent/cc"


def _copy_source(dest: Path) -> Path:
    """What a source distribution holds: no build/ folder, no compiled extension (a
    build would reuse either and never try the compiler)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "xnat_tui",
        dest / "xnat_tui",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.pyc"),
    )
    return dest


def _run(cmd: list[str | Path], **kw: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=240, **kw
    )
    assert result.returncode == 0, f"{cmd}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel built without a compiler: its bin folder."""
    base = tmp_path_factory.mktemp("install")
    src = _copy_source(base / "src")
    dist = base / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(CC=NO_COMPILER, CXX=NO_COMPILER, LDSHARED=f"{NO_COMPILER} -shared")
    build = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--verbose",
            "-w",
            dist,
            src,
        ],
        env=env,
        cwd=base,
    )
    # The optional extension was tried with the missing compiler, and skipped.
    assert NO_COMPILER in build.stdout + build.stderr
    [wheel] = dist.glob("xnat_tui-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base)
    bin_dir = venv / "bin"
    py = bin_dir / "python"
    purelib = _run(
        [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=base
    ).stdout.strip()
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            py,
            "install",
            "--no-deps",
            "--no-index",
            "--no-compile",
            wheel,
        ],
        cwd=base,
    )
    # After the install: pip would take the editable xnat-tui it could see for installed.
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(purelib, "_test_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    return bin_dir


def test_the_wheel_built_without_a_compiler_has_no_extension(installed: Path) -> None:
    [wheel] = (installed.parent.parent / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "xnat_tui/dicom/walk.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    assert any(n.endswith(".tcss") for n in names), "package data (the app's CSS) is missing"


def test_the_installed_tool_runs_and_scans_with_the_pure_python_walk(
    installed: Path, dicom_tree: SmallTree, tmp_path: Path
) -> None:
    from xnat_tui import __version__

    out = _run([installed / "xnat-tui", "--version"], cwd=tmp_path).stdout
    assert out.strip() == f"xnat-tui {__version__}"
    probe = _run(
        [
            installed / "python",
            "-c",
            "import importlib.util, xnat_tui; from xnat_tui.dicom import walk; "
            "from xnat_tui.xnat import md5; "
            "print(xnat_tui.__file__); print(walk.FASTLIST); "
            "print(importlib.util.find_spec('xnat_tui.dicom._fastlist')); "
            "print(importlib.util.find_spec('xnat_tui.xnat._md5lanes')); "
            "print(type(md5.new(streams=8)).__name__)",
        ],
        cwd=tmp_path,
    ).stdout.splitlines()
    assert Path(probe[0]).is_relative_to(installed.parent), "not the installed copy"
    assert probe[1:4] == ["None", "None", "None"], "a C extension is there"
    assert probe[4] == "_Hashlib", "downloads check their MD5 with hashlib without it"

    scan = json.loads(
        _run(
            [installed / "xnat-tui", "scan", dicom_tree.root, "--json", "--no-cache"], cwd=tmp_path
        ).stdout
    )
    here = json.loads(
        _run(
            [sys.executable, "-m", "xnat_tui", "scan", dicom_tree.root, "--json", "--no-cache"],
            cwd=tmp_path,
        ).stdout
    )
    assert len(scan["sessions"]) == len(dicom_tree.studies) == 3
    assert sum(s["file_count"] for s in scan["sessions"]) == len(dicom_tree.paths)

    def shape(result: dict[str, object]) -> object:
        sessions = result["sessions"]
        assert isinstance(sessions, list)
        return sorted(
            (s["study_instance_uid"], s["file_count"], s["size"], len(s["scans"])) for s in sessions
        )

    assert shape(scan) == shape(here), "the pure-Python walk found something else"


def test_the_installed_completion_script_is_the_same(installed: Path, tmp_path: Path) -> None:
    out = _run([installed / "xnat-tui", "completion", "bash"], cwd=tmp_path).stdout
    here = _run([sys.executable, "-m", "xnat_tui", "completion", "bash"], cwd=tmp_path).stdout
    assert out == here and "transfers" in out


# ------------------------------------------------------- ranges and the lock file
def _project() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line)
        assert match, f"constraints.txt: {line!r} is not an exact NAME==VERSION pin"
        name = canonicalize_name(match[1])
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = match[2]
    return pins


def _requirements() -> list[Requirement]:
    project = _project()["project"]
    assert isinstance(project, dict)
    reqs = [Requirement(r) for r in project["dependencies"]]
    return reqs + [Requirement(r) for r in project["optional-dependencies"]["test"]]


def test_every_dependency_is_locked_at_a_version_its_range_allows() -> None:
    pins = _locked()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req}"
        )


def test_runtime_dependencies_are_ranges_but_textual_is_exact() -> None:
    project = _project()["project"]
    assert isinstance(project, dict)
    for text in project["dependencies"]:
        req = Requirement(text)
        exact = [s for s in req.specifier if s.operator in ("==", "===")]
        if canonicalize_name(req.name) == "textual":
            assert str(req.specifier) == "==8.2.8", "Textual is pinned exactly (style doc)"
        else:
            assert not exact, f"{text}: a range lets xnat-tui install next to other packages"
            assert any(s.operator == ">=" for s in req.specifier), f"{text}: needs a floor"


def test_the_test_venv_matches_the_lock() -> None:
    """What `make` installed is what constraints.txt says (a stale venv or lock shows)."""
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for req in _requirements():
        name = canonicalize_name(req.name)
        try:
            have = version(req.name)
        except PackageNotFoundError:
            wrong.append(f"{name} missing")
            continue
        if have != _locked()[name]:
            wrong.append(f"{name} {have} != {_locked()[name]}")
    assert wrong == []
