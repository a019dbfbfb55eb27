"""The README is part of the feature: it carries the config file verbatim and names
every key binding's id (the ids users remap in ``[keymap]``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_embeds_config_example_verbatim() -> None:
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8").strip()
    assert example in README


def binding_ids() -> set[str]:
    ids: set[str] = set()
    for path in (ROOT / "xnat_tui" / "ui").rglob("*.py"):
        ids |= set(re.findall(r'id="([a-z_]+\.[a-z_0-9]+)"', path.read_text(encoding="utf-8")))
    return ids


def test_every_binding_id_is_in_the_readme() -> None:
    ids = binding_ids()
    assert len(ids) > 50  # the pattern still finds them
    # The number keys are one row: main.focus_folders ... main.focus_transfers.
    documented = {i for i in ids if f"`{i}`" in README or i.startswith("main.focus_")}
    assert sorted(ids - documented) == []
