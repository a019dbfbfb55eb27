"""Private by default: what xnat-tui keeps on disk is readable by its user only.

The journal, receipts, scan cache and tree memos hold patient names, labels and paths;
on a shared login node the usual 0755/0644 would show them to every other user. Folders
are 0700 and files 0600; existing ones are tightened when they are opened.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; tighten it if it exists."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make an existing file 0600 (a missing one is left alone)."""
    _tighten(path, FILE_MODE)
    return path


def create_private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 unless it exists (then only tighten it).

    For files another library creates with its own mode (SQLite: 0644): created
    first, the library opens the existing file and keeps its mode.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    return private_file(path)


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` with mode 0600 for a file created now (a descriptor, for os.fdopen)."""
    return os.open(path, flags, FILE_MODE)


def private_tree(path: Path) -> Path:
    """:func:`private_dir`, and when ``path`` was open to others (made before files were
    private), tighten everything under it too: folders 0700, files 0600.

    A folder that is already 0700 is not walked: nobody else can reach what is
    inside, and the walk would cost a stat per file on every start.
    """
    try:
        loose = bool(os.stat(path).st_mode & 0o077)
    except FileNotFoundError:
        loose = False
    private_dir(path)
    if loose:
        for root, dirs, files in os.walk(path):
            for name in dirs:
                _tighten_entry(Path(root, name), DIR_MODE)
            for name in files:
                _tighten_entry(Path(root, name), FILE_MODE)
    return path


def _tighten_entry(path: Path, mode: int) -> None:
    # Symbolic links are left alone: chmod would change what they point at.
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return
    _tighten(path, mode)


def _tighten(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if os.stat(path).st_mode & 0o777 & ~mode:
            os.chmod(path, mode)
