"""``[copy]`` in the config: defaults of ``xnat-tui copy``/``move`` and the browser's
Copy/Move…, checked like every other table."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnat_tui import config
from xnat_tui.transfer.types import Destination
from xnat_tui.workflow import copy as copying


def test_copy_defaults_come_from_copy_then_defaults(isolated_dirs: Path) -> None:
    (isolated_dirs / "config.toml").write_text(
        '[defaults]\ndestination = "archive"\n\n[copy]\nsession_pattern = "{routing.session}_C"\n'
    )
    cfg = config.load()
    settings = copying.settings_for(cfg)
    assert settings.destination is Destination.ARCHIVE  # [copy] destination "" = [defaults]
    assert settings.anonymization == "none"  # not [defaults]: a copy keeps the data as it is
    assert cfg.copy.session_pattern == "{routing.session}_C"
    given = copying.settings_for(cfg, destination=Destination.PREARCHIVE, anonymization="basic")
    assert (given.destination, given.anonymization) == (Destination.PREARCHIVE, "basic")
    again = config.load(config.save(cfg, isolated_dirs / "again.toml"))
    assert again.copy == cfg.copy


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[copy]\ndestination = "moon"\n', r"\[copy\] destination.*not one of"),
        ('[copy]\nanonymization = "all"\n', r"\[copy\] anonymization.*not one of"),
        ('[copy]\ndest = "archive"\n', r"\[copy\]: unknown setting 'dest'"),
    ],
)
def test_bad_copy_settings_are_clear_errors(isolated_dirs: Path, text: str, fragment: str) -> None:
    (isolated_dirs / "config.toml").write_text(text)
    with pytest.raises(config.ConfigError, match=fragment):
        config.load()
