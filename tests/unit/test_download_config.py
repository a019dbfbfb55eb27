"""The [download] table: defaults, the example file's values, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnat_tui import config

ROOT = Path(__file__).parents[2]


def test_example_and_readme_carry_the_same_download_table() -> None:
    cfg = config.load(ROOT / "config.example.toml")
    assert cfg.download == config.DownloadSettings(jobs=8, layout="xnat", out_dir="")
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    start = example.index("[download]")
    block = example[start : example.index("[keymap]", start)]
    assert block in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[download]\njobs = 0\n", "jobs"),
        ("[download]\njobs = true\n", "jobs"),
        ("[download]\nlayout = 'tree'\n", "layout"),
        ("[download]\nfolder = 'x'\n", "unknown setting 'folder'"),
    ],
)
def test_bad_download_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(config.ConfigError, match=message):
        config.load(path)


def test_download_settings_round_trip(tmp_path: Path) -> None:
    cfg = config.Config(download=config.DownloadSettings(jobs=3, layout="flat", out_dir="/d"))
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg), encoding="utf-8")
    assert config.load(path).download == cfg.download
