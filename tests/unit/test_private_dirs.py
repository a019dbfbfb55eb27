"""State, cache and config are private: folders 0700, files 0600 (issue 14 #6).

The scan cache and tree memos hold patient names, labels and paths; on a shared login
node 0755/0644 would show them to every other user.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.dicom import SmallTree
from xnat_tui import cli, config


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask of most accounts (022): without care, files are 0644 and folders 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _loose(root: Path) -> dict[str, str]:
    loose = {}
    for name, mode in _modes(root).items():
        want = 0o700 if (root / name).is_dir() else 0o600
        if mode != want:
            loose[name] = oct(mode)
    return loose


def test_a_scan_and_a_config_save_leave_only_private_files(
    dicom_tree: SmallTree, isolated_dirs: Path
) -> None:
    old = os.stat(dicom_tree.root).st_mtime - 3600
    for path in [dicom_tree.root, *dicom_tree.root.rglob("*")]:
        os.utime(path, (old, old))  # not "being written": cached, and memoized
    for _ in range(2):
        assert cli.main(["scan", str(dicom_tree.root)]) == 0
    cfg = config.Config(profiles={"a": config.ServerProfile("a", "https://x.invalid", "u")})
    saved = config.save(cfg)
    cache, state = isolated_dirs / ".cache" / "xnat-tui", isolated_dirs / ".local" / "state"
    assert any(p.suffix == ".memo" for p in cache.rglob("*"))
    assert (cache / "scan-cache.sqlite3").exists()
    assert _loose(cache) == {}
    config.state_dir()
    assert _loose(state / "xnat-tui") == {}
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_a_new_config_folder_is_private(isolated_dirs: Path) -> None:
    target = isolated_dirs / "fresh" / "xnat-tui" / "config.toml"
    config.save(config.Config(), target)
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize("which", ["state_dir", "cache_dir"])
def test_existing_open_folders_and_files_are_tightened_on_start(
    isolated_dirs: Path, which: str
) -> None:
    root = isolated_dirs / (".local/state" if which == "state_dir" else ".cache") / "xnat-tui"
    (root / "receipts").mkdir(parents=True)
    (root / "receipts" / "job.json").write_text("{}")
    (root / "journal.sqlite3").write_text("")
    outside = isolated_dirs / "elsewhere.txt"
    outside.write_text("")
    (root / "link").symlink_to(outside)
    for path, mode in ((root, 0o755), (root / "receipts", 0o755)):
        path.chmod(mode)
    assert stat.S_IMODE((root / "journal.sqlite3").stat().st_mode) == 0o644
    assert getattr(config, which)() == root
    modes = _modes(root)
    assert modes["."] == 0o700 and modes["receipts"] == 0o700
    assert (
        modes["journal.sqlite3"] == 0o600 and modes[os.path.join("receipts", "job.json")] == 0o600
    )
    # A symbolic link is not followed out of the folder.
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
