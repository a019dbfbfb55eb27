"""``xnat-tui PATH``: the Folders pane starts at PATH, logged in or offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.ui.fakes import make_app, to_main, until
from xnat_tui.commands._args import CONNECTION_DEFAULTS
from xnat_tui.config import Config
from xnat_tui.ui.launch import build_app
from xnat_tui.ui.screens.login import LoginScreen
from xnat_tui.ui.widgets.folders import FolderTree


def _shown(app: object) -> tuple[str, list[str]]:
    tree = app.screen.query_one(FolderTree)  # type: ignore[attr-defined]
    return str(tree.root.label), sorted(str(n.label) for n in tree.root.children)


async def test_offline_mode_browses_the_folder_given_on_the_command_line(tmp_path: Path) -> None:
    start = tmp_path / "studies"
    for name in ("alpha", "beta"):
        (start / name).mkdir(parents=True)
    args = argparse.Namespace(**CONNECTION_DEFAULTS, sandbox=False, path=start)
    app = build_app(args, Config(), start_path=start)
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, LoginScreen)  # no server given: the login form
        await pilot.press("ctrl+o")
        await to_main(pilot)
        await until(pilot, lambda: _shown(app)[1] == ["alpha", "beta"])
        assert "studies" in _shown(app)[0]


async def test_after_login_the_folder_tree_starts_at_the_apps_start_path(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)  # start_path: tmp_path / "dicom", holding "A"
    async with app.run_test(size=(100, 30)) as pilot:
        await to_main(pilot)
        await until(pilot, lambda: _shown(app)[1] == ["A"])
        assert "dicom" in _shown(app)[0]
