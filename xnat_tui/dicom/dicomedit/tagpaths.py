"""Finding the elements a tag path names in a pydicom dataset, and creating targets.

Matching works on the dataset's element dict directly: a plain ``(gggg,eeee)`` is one
dict lookup, a wildcard one mask test per element, so scripts stay cheap per file.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from .nodes import ANY_ITEM, Step, TagPath, TagPattern

Match = tuple[Dataset, int]


class PathError(Exception):
    """A path cannot be resolved or created on this dataset."""


def _creator_blocks(ds: Dataset, pattern: TagPattern) -> Iterator[tuple[int, int]]:
    """(group, block byte) of every private block reserved by ``pattern.creator``."""
    gmask = pattern.mask & 0xFFFF0000
    gvalue = pattern.value & 0xFFFF0000
    for tag in list(ds._dict):
        group = tag >> 16
        elem = tag & 0xFFFF
        if not (group & 1) or not (0x10 <= elem <= 0xFF) or (tag & gmask) != gvalue:
            continue
        value = ds[tag].value
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str) and value.strip(" \x00") == pattern.creator:
            yield group, elem


def level_tags(ds: Dataset, pattern: TagPattern) -> list[int]:
    """Tags at this level of ``ds`` (not nested) that ``pattern`` names."""
    d = ds._dict
    if pattern.creator is None:
        exact = pattern.exact
        if exact is not None:
            return [exact] if exact in d else []
        mask, value = pattern.mask, pattern.value
        return [int(t) for t in d if (t & mask) == value]
    low_mask = pattern.mask & 0xFF
    low_value = pattern.value & 0xFF
    out: list[int] = []
    for group, block in _creator_blocks(ds, pattern):
        base = (group << 16) | (block << 8)
        if low_mask == 0xFF:
            tag = base | low_value
            if tag in d:
                out.append(tag)
        else:
            out.extend(
                int(t) for t in d if (t & 0xFFFFFF00) == base and (t & low_mask) == low_value
            )
    return out


def _sequence_items(ds: Dataset, tag: int) -> list[Dataset]:
    raw = ds._dict.get(BaseTag(tag))
    if raw is None:
        return []
    vr = raw.VR
    if vr is not None and vr not in ("SQ", "UN"):
        return []
    elem = ds[tag]
    if elem.VR != "SQ" or elem.value is None:
        return []
    return list(elem.value)


def _all_items(ds: Dataset) -> Iterator[Dataset]:
    """Items of every sequence at this level (public or private)."""
    for tag in list(ds._dict):
        yield from _sequence_items(ds, int(tag))


def _select(items: list[Dataset], step: Step) -> list[Dataset]:
    if step.item is None or step.item == ANY_ITEM:
        return items
    return [items[step.item]] if step.item < len(items) else []


def _walk(
    ds: Dataset,
    steps: tuple[Step, ...],
    i: int,
    final: TagPattern,
    out: dict[tuple[int, int], Match],
) -> None:
    if i == len(steps):
        for tag in level_tags(ds, final):
            out.setdefault((id(ds), tag), (ds, tag))
        return
    step = steps[i]
    if step.kind == "tag":
        assert step.tag is not None
        for tag in level_tags(ds, step.tag):
            for item in _select(_sequence_items(ds, tag), step):
                _walk(item, steps, i + 1, final, out)
    elif step.kind == "dot":
        for item in _all_items(ds):
            _walk(item, steps, i + 1, final, out)
    elif step.kind == "star":
        _walk(ds, steps, i + 1, final, out)
        for item in _all_items(ds):
            _walk(item, steps, i, final, out)
    else:  # plus: one level, then zero or more
        for item in _all_items(ds):
            _walk(item, steps[:i] + (Step("star"),) + steps[i + 1 :], i, final, out)


def find(ds: Dataset, path: TagPath) -> list[Match]:
    """Every (container dataset, tag) the path names, each once, in document order."""
    if not path.steps:
        return [(ds, tag) for tag in level_tags(ds, path.final)]
    out: dict[tuple[int, int], Match] = {}
    _walk(ds, path.steps, 0, path.final, out)
    return list(out.values())


def container_for(ds: Dataset, path: TagPath) -> Dataset:
    """The dataset that holds the (singular) path's final element, creating items if needed."""
    container = ds
    for step in path.steps:
        assert step.tag is not None and step.item is not None and step.tag.exact is not None
        tag = step.tag.exact
        if tag not in container._dict:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = ""
            if vr != "SQ":
                raise PathError(f"{step.tag.text} is not a sequence")
            container.add_new(tag, "SQ", Sequence())
        elem = container[tag]
        if elem.VR != "SQ":
            raise PathError(f"{step.tag.text} is not a sequence")
        if elem.value is None:
            elem.value = Sequence()
        items = elem.value
        while len(items) <= step.item:
            items.append(Dataset())
        container = items[step.item]
    return container


def private_target(container: Dataset, pattern: TagPattern, *, create: bool = False) -> int | None:
    """Tag of a private-creator element in ``container`` (present or not).

    Without a block for the creator: None, or with ``create`` the first free creator slot
    is reserved, as mizer's ``resolvePrivateTag(..., create=true)`` does.
    """
    for group, block in _creator_blocks(container, pattern):
        return (group << 16) | (block << 8) | (pattern.value & 0xFF)
    if not create:
        return None
    group = pattern.value >> 16
    for block in range(0x10, 0x100):
        creator_tag = (group << 16) | block
        if creator_tag not in container._dict:
            container.add_new(creator_tag, "LO", pattern.creator)
            return (group << 16) | (block << 8) | (pattern.value & 0xFF)
    raise PathError(f"no free private creator slot in group {group:04X}")


def remove_private(ds: Dataset) -> None:
    """Delete odd-group elements everywhere, including inside sequences (and private SQs)."""
    d = ds._dict
    for tag in [t for t in d if (t >> 16) & 1]:
        del ds[tag]
    for tag in list(d):
        for item in _sequence_items(ds, int(tag)):
            remove_private(item)


def batchable(path: TagPath) -> bool:
    """True for ``(tag)``, ``*/(tag)`` and ``+/(tag)`` without a private creator."""
    if path.final.creator is not None:
        return False
    return not path.steps or (len(path.steps) == 1 and path.steps[0].kind in ("star", "plus"))


def delete_batch(
    ds: Dataset,
    top_exact: frozenset[int],
    top_masks: tuple[tuple[int, int], ...],
    nested_exact: frozenset[int],
    nested_masks: tuple[tuple[int, int], ...],
) -> None:
    d = ds._dict
    doomed = [t for t in d if t in top_exact or any((t & m) == v for m, v in top_masks)]
    for tag in doomed:
        del ds[tag]
    if not nested_exact and not nested_masks:
        return
    for tag in list(d):
        for item in _sequence_items(ds, int(tag)):
            delete_batch(item, nested_exact, nested_masks, nested_exact, nested_masks)
