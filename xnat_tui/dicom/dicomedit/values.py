"""Reading an element as a DicomEdit string, and writing a string back with its VR."""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

_INT_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_BYTES_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
# Text VRs whose values may contain a backslash (single-valued by definition).
_SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})


class ValueError_(Exception):
    """A string cannot be stored with the element's VR."""


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bytes):
        # mizer reads OB/OW/UN as UTF-8 text, dropping one trailing NUL pad byte.
        if value.endswith(b"\x00"):
            value = value[:-1]
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, BaseTag):
        return f"{value:08X}"
    return str(value)


def element_string(elem: DataElement) -> str:
    """The value as DicomEdit's ``getString`` gives it, '' if present but empty.

    Multiple values are joined with a backslash, as mizer's ``joinMultipleValues`` does
    (dicom.md §1.5 had guessed the first value; the mizer source settles it).
    """
    value = elem.value
    if value is None:
        return ""
    if elem.VR == "SQ":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_scalar(v) for v in value)
    return _scalar(value)


def first_vr(vr: str) -> str:
    """Dictionary VRs like 'US or SS' -> 'US'."""
    return vr.split(" or ", 1)[0].strip()


def convert_for_vr(vr: str, text: str) -> Any:
    """The Python value pydicom stores for ``text`` written to an element of ``vr``."""
    vr = first_vr(vr)
    if vr == "SQ":
        if text == "":
            return Sequence()
        raise ValueError_("a text value cannot be assigned to a sequence")
    if vr in _BYTES_VRS:
        data = text.encode("utf-8")
        return data + b"\x00" if len(data) % 2 else data
    parts = [text] if vr in _SINGLE_TEXT_VRS else text.split("\\")
    if vr in _INT_VRS or vr in _FLOAT_VRS:
        if text == "":
            return None
        convert = int if vr in _INT_VRS else float
        try:
            numbers = [convert(p.strip()) for p in parts]
        except ValueError:
            raise ValueError_(f"{text!r} is not a valid {vr} value") from None
        return numbers[0] if len(numbers) == 1 else numbers
    if vr == "AT":
        if text == "":
            return None
        try:
            tags = [int(p.strip().strip("()").replace(",", ""), 16) for p in parts]
        except ValueError:
            raise ValueError_(f"{text!r} is not a valid AT value") from None
        return tags[0] if len(tags) == 1 else tags
    return parts[0] if len(parts) == 1 else parts
