"""Themes from TOML files, registered next to Textual's built-ins.

A theme file that cannot be read or makes no sense produces a warning string
for the user; it never stops the app from starting.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from xnat_tui import config as cfgmod

# Shipped themes live in the repository's top-level themes/ folder; users add
# their own under the config dir.
SHIPPED_THEMES_DIR = Path(__file__).resolve().parents[2] / "themes"

_COLOUR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_OTHER_KEYS = ("name", "dark", "luminosity_spread", "text_alpha", "variables")


@dataclass
class ThemeLoad:
    themes: list[Theme] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def user_themes_dir() -> Path:
    return cfgmod.config_path().parent / "themes"


def theme_dirs() -> list[Path]:
    return [SHIPPED_THEMES_DIR, user_themes_dir()]


def _colour(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a colour string, got {value!r}")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{where}: {value!r} is not a colour") from None
    return value


def theme_from_toml(path: Path) -> Theme:
    """Parse one theme file; ValueError with a readable reason when it is broken."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{path.name}: {exc.strerror}") from None
    unknown = set(raw) - set(_COLOUR_KEYS) - set(_OTHER_KEYS)
    if unknown:
        raise ValueError(f"{path.name}: unknown key {sorted(unknown)[0]!r}")
    name = raw.get("name") or path.stem
    if not isinstance(name, str):
        raise ValueError(f"{path.name}: name must be a string")
    if "primary" not in raw:
        raise ValueError(f"{path.name}: missing 'primary' colour")
    kwargs: dict[str, Any] = {
        key: _colour(raw[key], f"{path.name} {key}") for key in _COLOUR_KEYS if key in raw
    }
    dark = raw.get("dark", True)
    if not isinstance(dark, bool):
        raise ValueError(f"{path.name}: dark must be true or false")
    variables = raw.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValueError(f"{path.name}: [variables] must map names to strings")
    for key in ("luminosity_spread", "text_alpha"):
        if key in raw:
            if not isinstance(raw[key], int | float):
                raise ValueError(f"{path.name}: {key} must be a number")
            kwargs[key] = float(raw[key])
    return Theme(name=name, dark=dark, variables=dict(variables), **kwargs)


def load_themes(dirs: list[Path] | None = None) -> ThemeLoad:
    result = ThemeLoad()
    seen: set[str] = set()
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = theme_from_toml(path)
            except ValueError as exc:
                result.warnings.append(f"Theme file skipped: {exc}")
                continue
            if theme.name in seen:
                result.warnings.append(f"Theme {theme.name!r} defined twice; using {path}")
                result.themes = [t for t in result.themes if t.name != theme.name]
            seen.add(theme.name)
            result.themes.append(theme)
    return result
