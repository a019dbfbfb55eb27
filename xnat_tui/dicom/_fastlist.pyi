"""Types of the C extension xnat_tui/dicom/_fastlist.c (see walk.py for its use)."""

import os

def list_dir(path: str | os.PathLike[str], /) -> tuple[list[tuple[str, int, int]], list[str]]:
    """(files, others) of one folder, both in readdir order.

    files: (name, st_size, st_mtime_ns) of the regular files with one link, from an
    lstat; others: the names of every other entry (folders, symlinks, hard-linked
    files, FIFOs, entries whose lstat failed). Raises OSError with the path as
    filename when the folder cannot be opened or read.
    """
