"""Series import filters (xnat-api.md §7.4), applied per instance on import.

Config tool ``seriesImportFilter``, path ``config``; contents are a JSON object of
strings: ``{"mode": "blacklist|whitelist|modalityMap", "enabled": "true", "list": ...}``.
``list`` holds one case-insensitive regex per line (``find`` semantics) tested against
SeriesDescription; ``[Keyword]`` or ``[gggg,eeee]`` lines switch the tested tag;
``EXISTS`` / ``!EXISTS`` test presence. The first pattern that matches decides:
whitelist → keep, blacklist → drop; no match → the opposite. ``modalityMap`` filters
need an expression engine XNAT does not document; the sandbox treats them as
accept-all rather than guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword

SERIES_DESCRIPTION = 0x0008103E
_TAG_RE = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")


class FilterConfigError(ValueError):
    """The stored filter cannot be parsed (XNAT refuses to use it)."""


def parse_tag(text: str) -> int:
    """``(0008,103E)``, ``0008,103E``, ``0008103E`` or a keyword → tag number."""
    text = text.strip()
    m = _TAG_RE.match(text)
    if m:
        return int(m.group(1) + m.group(2), 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise FilterConfigError(f"Unknown DICOM header in series import filter: {text}")
    return int(tag)


@dataclass
class SeriesFilter:
    mode: str
    enabled: bool
    patterns: dict[int, list[re.Pattern[str]]] = field(default_factory=dict)
    project_id: str = ""

    @property
    def tags(self) -> list[int]:
        return list(self.patterns)

    def accepts(self, values: Mapping[int, str | None]) -> bool:
        """Whether an instance with these header values (None = absent) is kept."""
        if not self.enabled or self.mode not in ("blacklist", "whitelist"):
            return True
        for tag, pats in self.patterns.items():
            value = values.get(tag)
            for pat in pats:
                if _matches(pat, value):
                    return self.mode == "whitelist"
        return self.mode == "blacklist"


def _matches(pat: re.Pattern[str], value: str | None) -> bool:
    if pat.pattern == "EXISTS" and value is not None:
        return True
    if pat.pattern == "!EXISTS" and value is None:
        return True
    if value is None:
        return False
    return pat.search(value) is not None


def parse_filter(contents: str) -> SeriesFilter | None:
    """Parse stored JSON contents; None when empty. Raises FilterConfigError."""
    if not contents or not contents.strip():
        return None
    try:
        doc = json.loads(contents)
    except json.JSONDecodeError as exc:
        raise FilterConfigError(f"series import filter is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise FilterConfigError("series import filter must be a JSON object")
    mode = str(doc.get("mode", "blacklist")).strip().lower()
    enabled = str(doc.get("enabled", "true")).strip().lower() not in ("false", "0")
    listing = str(doc.get("list", ""))
    patterns: dict[int, list[re.Pattern[str]]] = {}
    current = SERIES_DESCRIPTION
    for raw in re.split(r"\r?\n|\\n", listing):
        if not raw.strip() or raw.startswith("#"):
            continue
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = parse_tag(line[1:-1])
            patterns.setdefault(current, [])
            continue
        try:
            patterns.setdefault(current, []).append(re.compile(line, re.IGNORECASE))
        except re.error as exc:
            raise FilterConfigError(
                f"The series import filter contains the following invalid pattern(s):\n"
                f" * {line}: {exc}"
            ) from exc
    return SeriesFilter(
        mode=mode,
        enabled=enabled,
        patterns={t: p for t, p in patterns.items() if p},
        project_id=str(doc.get("projectId", "")),
    )
