"""Series import filters: which series the server will silently drop (pure).

Mirrors XNAT's ``RegExBasedSeriesImportFilter`` (dicomtools): the ``list`` is one regex per
line (``#`` comments and blank lines ignored), tested case-insensitively with *find*
semantics against SeriesDescription unless a ``[Keyword]`` or ``[gggg,eeee]`` section
header selects another tag; ``EXISTS`` / ``!EXISTS`` test presence. Blacklist: any match
drops the instance. Whitelist: only matches are kept. Site and project filters must both
accept (xnat-api.md §7.4). ``modalityMap`` filters cannot be evaluated client-side and
are reported as such (they accept everything here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

SERIES_DESCRIPTION = 0x0008103E
_HEX_TAG = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")

MODES = ("blacklist", "whitelist", "modalityMap")


def parse_tag(spec: str | int) -> int | None:
    """``(0008,103E)``, ``0008,103E``, ``0008103E`` or ``SeriesDescription`` → tag int."""
    if isinstance(spec, int):
        return spec
    text = spec.strip()
    match = _HEX_TAG.match(text)
    if match:
        return int(match.group(1) + match.group(2), 16)
    # pydicom's dictionary is imported only for a keyword: loading pydicom costs every
    # command that reaches this module (through the upload plan) ~0.1 s of start-up.
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(text)
    return int(tag) if tag is not None else None


def tag_name(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@dataclass(frozen=True)
class FilterRule:
    tag: int
    pattern: str


@dataclass(frozen=True)
class SeriesImportFilter:
    """One filter (site or project scope) as stored in the config service."""

    scope: str  # "site" or "project P"
    mode: str
    enabled: bool
    rules: tuple[FilterRule, ...] = ()
    # Lines XNAT would reject as invalid regexes; shown to the user, ignored here.
    invalid_patterns: tuple[str, ...] = ()
    raw: str = ""

    @property
    def evaluable(self) -> bool:
        return self.mode in ("blacklist", "whitelist")

    def describe(self) -> str:
        """One line for the user: scope, mode and patterns."""
        rules = "; ".join(r.pattern for r in self.rules) or "(empty)"
        return f"{self.scope} {self.mode} {rules}"

    @classmethod
    def parse(
        cls, contents: str | Mapping[str, object], scope: str, *, status_enabled: bool = True
    ) -> SeriesImportFilter:
        """Parse the JSON stored under ``seriesImportFilter/config``.

        ``status_enabled`` is the config entry's own status (``disabled`` wins over the
        JSON's ``enabled``).
        """
        if isinstance(contents, str):
            try:
                data = json.loads(contents, strict=False) if contents.strip() else {}
            except ValueError:
                # XNAT would refuse such a filter; treat it as off but show it.
                return cls(scope, "blacklist", False, (), (contents,), contents)
        else:
            data = dict(contents)
        raw = contents if isinstance(contents, str) else json.dumps(data)
        if not isinstance(data, dict):
            return cls(scope, "blacklist", False, (), (), raw)
        mode_value = str(data.get("mode", "blacklist"))
        mode = next((m for m in MODES if m.lower() == mode_value.lower()), mode_value)
        enabled_value = data.get("enabled", "true")
        enabled = status_enabled and str(enabled_value).strip().lower() not in ("false", "0")
        rules, invalid = _parse_list(str(data.get("list", "") or ""))
        return cls(scope, mode, enabled, tuple(rules), tuple(invalid), raw)

    def accepts(self, headers: Mapping[int, str | None]) -> tuple[bool, str]:
        """(kept?, why) for one series whose header values are keyed by tag int."""
        if not self.enabled:
            return True, ""
        if not self.evaluable:
            return True, f"{self.scope} filter mode {self.mode!r} is not evaluated locally"
        for rule in self.rules:
            value = headers.get(rule.tag)
            if _matches(rule.pattern, value):
                shown = (
                    f"{tag_name(rule.tag)} {value!r}"
                    if value is not None
                    else (f"{tag_name(rule.tag)} (absent)")
                )
                if self.mode == "whitelist":
                    return True, f"{self.scope} whitelist pattern {rule.pattern!r} matches {shown}"
                return False, (
                    f"dropped by the {self.scope} series import filter: blacklist pattern "
                    f"{rule.pattern!r} matches {shown}"
                )
        if self.mode == "whitelist":
            return False, (
                f"dropped by the {self.scope} series import filter: no whitelist pattern matches"
            )
        return True, ""


def _parse_list(text: str) -> tuple[list[FilterRule], list[str]]:
    lines = text.split("\\n") if "\\n" in text else text.split("\n")
    rules: list[FilterRule] = []
    invalid: list[str] = []
    current = SERIES_DESCRIPTION
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        trimmed = line.strip()
        if trimmed.startswith("[") and trimmed.endswith("]"):
            tag = parse_tag(trimmed[1:-1])
            if tag is None:
                invalid.append(trimmed)
            current = tag if tag is not None else -1
            continue
        if current < 0:
            invalid.append(trimmed)
            continue
        if trimmed not in ("EXISTS", "!EXISTS"):
            try:
                re.compile(trimmed, re.IGNORECASE)
            except re.error:
                invalid.append(trimmed)
                continue
        rules.append(FilterRule(current, trimmed))
    return rules, invalid


def _matches(pattern: str, value: str | None) -> bool:
    if pattern == "EXISTS":
        return value is not None
    if pattern == "!EXISTS":
        return value is None
    if value is None:
        return False
    return re.search(pattern, value, re.IGNORECASE) is not None
