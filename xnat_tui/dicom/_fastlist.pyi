"""Types of the C extension xnat_tui/dicom/_fastlist.c (see walk.py for its use)."""

import os

def list_dir(path: str | os.PathLike[str], /) -> tuple[list[tuple[str, int, int]], list[str]]:
    """(files, others) of one folder, both in readdir order.

    files: (name, st_size, st_mtime_ns) of the regular files with one link, from an
    lstat; others: the names of every other entry (folders, symlinks, hard-linked
    files, FIFOs, entries whose lstat failed). Raises OSError with the path as
    filename when the folder cannot be opened or read.
    """

def pack(files: list[tuple[str, int, int]], /) -> bytes:
    """The exact bytes of a listing: per file its name's bytes, NUL, then size and
    mtime_ns as 8-byte little-endian integers. Names holding NUL are refused."""

def unpack(packed: bytes | memoryview, /) -> list[tuple[str, int, int]]:
    """The listing ``pack`` was given; ValueError if ``packed`` is not one."""

def check_tree(
    paths: list[str] | tuple[str, ...], threads: int, /
) -> list[tuple[int, int, bytes, list[str]] | None]:
    """For each folder, read in up to ``threads`` threads with the GIL released:
    (st_dev, st_ino, pack() of its one-link regular files, its real subfolders), both
    in readdir order; None if it cannot be read or holds anything else."""
