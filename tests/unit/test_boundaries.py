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


def _imports(package: str) -> dict[str, set[str]]:
    """Every module a package's files import, at the top or inside a function."""
    import ast
    from pathlib import Path

    pkg = __import__(package, fromlist=["__path__"])
    found: dict[str, set[str]] = {}
    for path in sorted(Path(pkg.__path__[0]).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[path.name] = names
    return found


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in _imports(package).items()
        for name in names
        if name in forbidden or name.startswith(tuple(f"{f}." for f in forbidden))
    )


def test_commands_do_not_import_the_cli() -> None:
    # cli imports the commands; the way back would be an import circle.
    assert _offenders("xnat_tui.commands", ("xnat_tui.cli",)) == []


def test_workflow_imports_neither_textual_nor_ui_nor_commands() -> None:
    forbidden = ("textual", "xnat_tui.ui", "xnat_tui.commands", "xnat_tui.cli")
    assert _offenders("xnat_tui.workflow", forbidden) == []


def test_ui_does_not_import_the_commands() -> None:
    assert _offenders("xnat_tui.ui", ("xnat_tui.commands", "xnat_tui.cli")) == []


def test_no_two_classes_share_a_name() -> None:
    """One name, one concept: a top-level class name is defined once in the package."""
    import ast
    from collections import defaultdict
    from pathlib import Path

    where: dict[str, list[str]] = defaultdict(list)
    root = Path(xnat_tui.__file__).parent
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                where[node.name].append(str(path.relative_to(root)))
    assert {name: files for name, files in where.items() if len(files) > 1} == {}
