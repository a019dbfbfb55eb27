"""The layering rules of docs/architecture.md, checked in a clean interpreter."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import xnat_tui


def _modules(package: str) -> list[str]:
    pkg = __import__(package, fromlist=["__path__"])
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        names.append(info.name)
    return names


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_only_ui_imports_textual() -> None:
    domain = [
        m
        for pkg in ("xnat_tui.dicom", "xnat_tui.xnat", "xnat_tui.transfer", "xnat_tui.sandbox")
        for m in _modules(pkg)
    ] + ["xnat_tui.config", "xnat_tui.cli"]
    loaded = _loaded_after_import(domain)
    assert "textual" not in loaded, "a non-UI module imports textual"


def test_sandbox_does_not_import_the_client_or_engine() -> None:
    loaded = _loaded_after_import(_modules("xnat_tui.sandbox"))
    offenders = sorted(m for m in loaded if m.startswith(("xnat_tui.xnat", "xnat_tui.transfer")))
    assert offenders == []


def test_package_has_version() -> None:
    assert xnat_tui.__version__
