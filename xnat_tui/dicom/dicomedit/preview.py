"""Before/after tag diff of one file, for the TUI preview screen and ``anonymize --preview``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydicom import dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from xnat_tui.dicom import archives

from .anonymizer import Anonymizer

ChangeKind = Literal["changed", "added", "removed"]
_MAX_SHOWN = 64


@dataclass(frozen=True, slots=True)
class TagChange:
    """One difference. ``tag`` is a path: ``(0008,1140)[0]/(0008,1155)`` when nested."""

    tag: str
    keyword: str
    before: str | None
    after: str | None
    kind: ChangeKind

    def to_json(self) -> dict[str, str | None]:
        return {
            "tag": self.tag,
            "keyword": self.keyword,
            "before": self.before,
            "after": self.after,
            "kind": self.kind,
        }


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def display(elem: DataElement) -> str:
    """A short, printable rendering of an element's value."""
    value = elem.value
    if elem.VR == "SQ":
        count = len(value) if value is not None else 0
        return f"<sequence, {count} item{'s' if count != 1 else ''}>"
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return text


def _keyword(ds: Dataset, tag: int) -> str:
    kw = keyword_for_tag(tag)
    if kw:
        return kw
    if tag >> 16 & 1:
        elem = ds[tag]
        return f"private {elem.private_creator}" if elem.private_creator else "private"
    return ""


def diff_datasets(before: Dataset, after: Dataset, prefix: str = "") -> list[TagChange]:
    """Differences in tag order; a removed or added sequence is one entry, not its items."""
    changes: list[TagChange] = []
    tags = sorted(set(before._dict) | set(after._dict))
    for tag in tags:
        path = prefix + _tag_text(tag)
        old = before[tag] if tag in before._dict else None
        new = after[tag] if tag in after._dict else None
        if old is None and new is not None:
            changes.append(TagChange(path, _keyword(after, tag), None, display(new), "added"))
        elif new is None and old is not None:
            changes.append(TagChange(path, _keyword(before, tag), display(old), None, "removed"))
        elif old is not None and new is not None:
            if old.VR == "SQ" and new.VR == "SQ":
                old_items = list(old.value or [])
                new_items = list(new.value or [])
                for i in range(max(len(old_items), len(new_items))):
                    item_path = f"{path}[{i}]"
                    if i >= len(new_items):
                        changes.append(
                            TagChange(item_path, _keyword(before, tag), "<item>", None, "removed")
                        )
                    elif i >= len(old_items):
                        changes.append(
                            TagChange(item_path, _keyword(after, tag), None, "<item>", "added")
                        )
                    else:
                        changes.extend(diff_datasets(old_items[i], new_items[i], item_path + "/"))
                continue
            a, b = display(old), display(new)
            if a != b or old.VR != new.VR:
                changes.append(TagChange(path, _keyword(after, tag), a, b, "changed"))
    return changes


def _meta_changes(before: Dataset, after: Dataset) -> list[TagChange]:
    old_meta = getattr(before, "file_meta", None)
    new_meta = getattr(after, "file_meta", None)
    if old_meta is None or new_meta is None:
        return []
    return diff_datasets(old_meta, new_meta)


def preview_dataset(
    anonymizer: Anonymizer, ds: Dataset, variables: Mapping[str, str] | None = None
) -> list[TagChange]:
    """Diff of ``ds`` against its anonymized copy; ``ds`` itself is left unchanged."""
    after = copy.deepcopy(ds)
    anonymizer.apply(after, variables)
    return _meta_changes(ds, after) + diff_datasets(ds, after)


def read_header(path: str | Path) -> Dataset:
    """The header of a file on disk or inside an archive (``a.zip!member``, any depth),
    read in place like every other source file (never extracted)."""
    with archives.open_path(str(path)) as f:
        ds = dcmread(f, force=True, stop_before_pixels=True)
    # Pixel data is never read here: the closed stream is not kept (nor deep-copied).
    ds.buffer = None
    return ds


def preview_file(
    anonymizer: Anonymizer, path: str | Path, variables: Mapping[str, str] | None = None
) -> list[TagChange]:
    """Before/after diff of the file's header (pixel data is never shown or changed here)."""
    return preview_dataset(anonymizer, read_header(path), variables)
