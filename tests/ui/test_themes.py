"""Themes: shipped TOML files, broken files warn, config choice, run-time switch, NO_COLOR."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from tests.ui.fakes import make_app, to_main, until
from tests.ui.screen_text import notifications
from xnat_tui.config import Config, Defaults
from xnat_tui.ui.themes import SHIPPED_THEMES_DIR, load_themes


def test_shipped_themes_load_and_include_high_contrast():
    loaded = load_themes([SHIPPED_THEMES_DIR])
    assert loaded.warnings == []
    names = {t.name for t in loaded.themes}
    assert len(names) >= 2
    assert "xnat-high-contrast" in names
    hc = next(t for t in loaded.themes if t.name == "xnat-high-contrast")
    assert hc.background == "#000000" and hc.foreground == "#ffffff"


def test_broken_theme_files_give_warnings(tmp_path: Path):
    (tmp_path / "good.toml").write_text('name = "good"\nprimary = "#336699"\n')
    (tmp_path / "syntax.toml").write_text("name = \n")
    (tmp_path / "colour.toml").write_text('name = "c"\nprimary = "not-a-colour"\n')
    (tmp_path / "missing.toml").write_text('name = "m"\n')
    (tmp_path / "unknown.toml").write_text('name = "u"\nprimary = "#fff"\nsparkle = true\n')
    loaded = load_themes([tmp_path])
    assert [t.name for t in loaded.themes] == ["good"]
    text = "\n".join(loaded.warnings)
    for name in ("syntax.toml", "colour.toml", "missing.toml", "unknown.toml"):
        assert name in text


async def test_config_theme_is_applied_and_switchable(tmp_path):
    cfg = Config(defaults=Defaults(theme="xnat-high-contrast"))
    app, _, _ = make_app(tmp_path, config=cfg, theme_dirs=[SHIPPED_THEMES_DIR])
    async with app.run_test(size=(100, 30)) as pilot:
        await to_main(pilot)
        assert app.theme == "xnat-high-contrast"
        app.theme = "xnat-dusk"
        await pilot.pause()
        assert app.current_theme.name == "xnat-dusk"
        assert "textual-dark" in app.available_themes  # built-ins still there


async def test_broken_theme_and_unknown_choice_warn_but_start(tmp_path):
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "broken.toml").write_text("primary = [\n")
    cfg = Config(defaults=Defaults(theme="no-such-theme"))
    app, _, _ = make_app(tmp_path, config=cfg, theme_dirs=[themes])
    seen: list[Message] = []
    async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
        await to_main(pilot)
        warnings = [n for n in notifications(seen) if n.severity == "warning"]
        assert any("broken.toml" in n.message for n in warnings)
        assert any("no-such-theme" in n.message for n in warnings)
        assert app.theme == "textual-dark"


async def test_no_color_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await to_main(pilot)
        assert app.no_color
        await until(pilot, lambda: any("NO_COLOR" in line.message for line in app.log_buffer.lines))
