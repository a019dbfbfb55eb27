"""Examine files one by one: what runs inside the scan's worker processes.

A result is a plain tuple of builtins (a ``Record``) so it pickles cheaply between
processes and can be stored as-is in the rescan cache.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xnat_tui.dicom import archives
from xnat_tui.dicom.archives import SEP
from xnat_tui.dicom.header import (
    DEFAULT_TAGS,
    DICOMDIR_SOP_CLASS,
    IMPLICIT_LE,
    META_SOP_CLASS_KEY,
    PIXEL_KEY,
    REQUIRED,
    TS_KEY,
    VIA_KEY,
    ZEROS_KEY,
    HeaderError,
    NeedFallback,
    fast_header,
    fragments_problem,
    pydicom_header,
    trailing_problem,
    zeros_tail_detail,
)
from xnat_tui.dicom.model import ProblemKind

# (path, size, mtime_ns, kind, detail, values, bytes_read); kind "" = usable DICOM.
Record = tuple[str, int, int, str, str, dict[str, str] | None, int]
Item = tuple[str, int, int]  # (path, size, mtime_ns) as found by the walk
# Added to the workers' nice value (Unix): lower CPU priority than the caller.
WORKER_NICENESS = 10

_JUNK_NAMES = {
    ".ds_store": "macOS Finder metadata (.DS_Store)",
    "thumbs.db": "Windows thumbnail cache (Thumbs.db)",
    "ehthumbs.db": "Windows thumbnail cache",
    "desktop.ini": "Windows folder settings (desktop.ini)",
    ".localized": "macOS folder name file",
    "icon\r": "macOS custom folder icon",
    ".directory": "KDE folder settings",
}
# Transfer syntaxes whose Pixel Data is stored natively, so its length is predictable.
_NATIVE = {IMPLICIT_LE, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def junk_reason(name: str) -> str | None:
    """Why a file is operating-system litter, or None."""
    lower = name.lower()
    if lower in _JUNK_NAMES:
        return _JUNK_NAMES[lower]
    if name.startswith("._"):
        return "macOS resource fork (AppleDouble '._' file)"
    if lower.endswith("~") or lower.endswith(".swp"):
        return "editor backup file"
    return None


def _missing(values: Mapping[str, str]) -> list[str]:
    return [k for k in REQUIRED if not values.get(k)]


def _pixel_problem(values: Mapping[str, str], size: int) -> tuple[str, str] | None:
    pixel = values.get(PIXEL_KEY)
    rows, cols, bits = values.get("Rows"), values.get("Columns"), values.get("BitsAllocated")
    if pixel is None:
        # No pixels at all: non-image objects, CR/CSA objects with Rows and Columns
        # but no Pixel Data. pydicom reads them fully, and so do we.
        return None
    offset_s, length_s = pixel.split(":")
    offset, length = int(offset_s), int(length_s)
    if length < 0:
        return None  # encapsulated (compressed): fragment lengths are not checked here
    if offset + length > size:
        return (
            ProblemKind.TRUNCATED,
            f"Pixel Data declares {length} bytes but the file ends "
            f"{offset + length - size} bytes early",
        )
    if values.get(TS_KEY) in _NATIVE and rows and cols and bits:
        try:
            frames = int(float(values.get("NumberOfFrames") or 1)) or 1
            spp = int(values.get("SamplesPerPixel") or 1)
            samples = int(rows) * int(cols) * spp * frames
            photometric = values.get("PhotometricInterpretation", "")
            if spp == 3 and photometric.endswith("_422"):
                samples = samples * 2 // 3  # chroma shared by pixel pairs
            elif spp == 3 and photometric.endswith("_420"):
                samples = samples // 2
            expected = (samples * int(bits) + 7) // 8
        except ValueError:
            return None
        if length < expected:
            return (
                ProblemKind.CORRUPT,
                f"Pixel Data holds {length} bytes, fewer than the {expected} that "
                f"Rows x Columns x Samples x Bits x Frames require",
            )
    return None


def _open(path: str, source: Any) -> Any:
    """The file to read: an archive member held by the caller (``source``, left open),
    a member reached by random access, or a file on disk (unbuffered: we read one block
    and seek; a BufferedReader only adds copying)."""
    if source is not None:
        source.seek(0)
        return contextlib.nullcontext(source)
    if SEP in path and archives.is_member(path):
        try:
            f = archives.open_random(path)
        except archives.OPEN_ERRORS as exc:
            raise OSError(0, f"cannot be read from its archive ({exc})") from None
        if f is None:
            raise OSError(0, "inside a compressed archive: only read during a pass over it")
        return f
    return open(path, "rb", buffering=0)  # noqa: SIM115 - used as a context manager


def examine(
    path: str,
    size: int,
    mtime_ns: int,
    want: Mapping[int, tuple[str, str]] = DEFAULT_TAGS,
    source: Any = None,
) -> Record:
    """Classify one file; never raises. ``source``: the bytes of an archive member
    read during a pass over its archive (a seekable file object)."""
    name = os.path.basename(path)
    junk = junk_reason(name)
    if junk is not None:
        return (path, size, mtime_ns, ProblemKind.JUNK, junk, None, 0)
    if size == 0:
        return (path, size, mtime_ns, ProblemKind.EMPTY, "empty file (0 bytes)", None, 0)
    nread = 0
    try:
        with _open(path, source) as f:
            held = None if f.__class__ is io.FileIO else f
            try:
                values, nread = fast_header(f, size, want)
            except NeedFallback:
                f.seek(0)
                head = f.read(132)
                bare = head[128:132] != b"DICM"
                values, nread = pydicom_header(path, want, force=bare, fileobj=held)
            except HeaderError:
                raise
            except Exception:  # noqa: BLE001 - a fast-path bug must not lose the file
                values, nread = pydicom_header(path, want, fileobj=held)
            if values.get(META_SOP_CLASS_KEY) == DICOMDIR_SOP_CLASS:
                return (
                    path,
                    size,
                    mtime_ns,
                    ProblemKind.DICOMDIR,
                    "DICOMDIR (media index): skipped, never uploaded",
                    None,
                    nread,
                )
            if _missing(values) and values.get(VIA_KEY) == "fast":
                # Tags stored out of order or in an odd place: pydicom reads everything.
                force = values.get("_part10") == "0"
                values, more = pydicom_header(path, want, force=force, fileobj=held)
                nread += more
            where = values.get(PIXEL_KEY)
            if where is not None and not _missing(values):
                start, length = (int(n) for n in where.split(":"))
                if length < 0:
                    cut = fragments_problem(f, start, size)
                elif start + length < size:  # something follows the pixels
                    cut = trailing_problem(f, start + length, size, values.get(TS_KEY, ""))
                else:
                    cut = None
                if cut is not None:
                    return (path, size, mtime_ns, ProblemKind.TRUNCATED, cut, values, nread)
    except HeaderError as exc:
        return (path, size, mtime_ns, exc.kind, exc.detail, None, nread)
    except FileNotFoundError:
        return (path, size, mtime_ns, ProblemKind.UNREADABLE, "vanished during the scan", None, 0)
    except PermissionError:
        return (path, size, mtime_ns, ProblemKind.UNREADABLE, "permission denied", None, 0)
    except IsADirectoryError:
        return (path, size, mtime_ns, ProblemKind.UNREADABLE, "is a directory", None, 0)
    except OSError as exc:
        detail = f"read error: {exc.strerror or exc}"
        return (path, size, mtime_ns, ProblemKind.UNREADABLE, detail, None, nread)

    missing = _missing(values)
    if missing:
        lacks = "missing " + ", ".join(missing) + " (cannot be placed in a session)"
        # A file meta header (its SOP class element, even empty) or any attribute of
        # ours means the file was read: a stub or test object lacking the UIDs.
        read = META_SOP_CLASS_KEY in values or any(k[0] != "_" for k in values)
        if not read:
            garbage = "no DICOM attributes could be read (damaged, or garbage after 'DICM')"
            detail = f"{garbage}: {lacks}"
            return (path, size, mtime_ns, ProblemKind.CORRUPT, detail, None, nread)
        return (path, size, mtime_ns, ProblemKind.INCOMPLETE, lacks, values, nread)
    zeros = values.get(ZEROS_KEY)
    if zeros is not None:
        detail = zeros_tail_detail(int(zeros))
        return (path, size, mtime_ns, ProblemKind.TRUNCATED, detail, values, nread)
    pixel = _pixel_problem(values, size)
    if pixel is not None:
        return (path, size, mtime_ns, pixel[0], pixel[1], values, nread)
    return (path, size, mtime_ns, "", "", values, nread)


# Compact form sent back to the scanner and kept in the rescan cache: values shared by
# many files (patient, study, series...) are stored once per "context"; each file
# keeps only what differs per instance.
# Row = (path, size, mtime_ns, kind, detail, context index or -1, SOPInstanceUID,
#        InstanceNumber text, bytes read)
Row = tuple[str, int, int, str, str, int, str, str, int]
Chunk = tuple[list[dict[str, str]], list[Row]]


def compact(records: Iterable[Record]) -> Chunk:
    contexts: list[dict[str, str]] = []
    index: dict[tuple[tuple[str, str], ...], int] = {}
    rows: list[Row] = []
    last = -1
    for path, size, mtime_ns, kind, detail, values, nread in records:
        if kind or values is None:
            rows.append((path, size, mtime_ns, kind, detail, -1, "", "", nread))
            continue
        # The record is ours: strip the per-file values in place, keep the rest as context.
        sop = values.pop("SOPInstanceUID")
        inst = values.pop("InstanceNumber", "")
        values.pop(PIXEL_KEY, None)
        values.pop(VIA_KEY, None)
        # Neighbouring files are usually from the same series: compare before hashing.
        if last >= 0 and contexts[last] == values:
            i = last
        else:
            key = tuple(values.items())
            i = index.get(key, -1)
            if i < 0:
                i = index[key] = len(contexts)
                contexts.append(values)
            last = i
        rows.append((path, size, mtime_ns, "", "", i, sop, inst, nread))
    return contexts, rows


def init_worker() -> None:
    """Worker start-up: Ctrl-C is the parent's business (it kills us cleanly), and
    nothing may be printed on the terminal the parent (maybe the TUI) is drawing on."""
    import logging
    import signal
    import warnings

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        # Header reading is background work: on a shared login node, and in the TUI,
        # the process the user is typing into comes first.
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)
    warnings.simplefilter("ignore")
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger().setLevel(logging.CRITICAL + 1)


def examine_chunk(
    items: Sequence[Item], want: Mapping[int, tuple[str, str]] = DEFAULT_TAGS
) -> Chunk:
    """What a worker process runs: examine a list of files, answer compactly."""
    return compact(examine(p, s, m, want) for p, s, m in items)
