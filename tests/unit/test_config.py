from __future__ import annotations

from pathlib import Path

import pytest

from xnat_tui import config


def test_missing_file_gives_defaults(isolated_dirs: Path) -> None:
    cfg = config.load()
    assert cfg.profiles == {}
    assert cfg.defaults.concurrency == 4
    assert cfg.path == isolated_dirs / "config.toml"


def test_example_config_is_valid() -> None:
    cfg = config.load(Path(__file__).parents[2] / "config.example.toml")
    assert cfg.profile() is cfg.profiles["sandbox"]
    assert cfg.profiles["sandbox"].url == "http://127.0.0.1:8080"
    assert cfg.anonymization_for(cfg.profile(), "STUDY_B") == "xnat"
    assert cfg.anonymization_for(cfg.profile(), "PILOT") == "none"
    assert cfg.defaults.routing_patterns[0].tag == "StudyDescription"


def test_round_trip(tmp_path: Path) -> None:
    cfg = config.Config(default_profile="a")
    cfg.profiles["a"] = config.ServerProfile(name="a", url="https://x.invalid", user="u")
    cfg.keymap["transfers.pause"] = "ctrl+p"
    cfg.defaults.concurrency = 8
    target = config.save(cfg, tmp_path / "c.toml")
    again = config.load(target)
    assert again.profiles["a"].user == "u"
    assert again.keymap == {"transfers.pause": "ctrl+p"}
    assert again.defaults.concurrency == 8


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[profiles.a]\nurl="https://x"\npassword="s"\n', "passwords are never read"),
        ("[defaults]\nconcurrency = 0\n", "between 1 and 32"),
        ("[defaults]\nbandwidth_limit_mbps = -1\n", "bandwidth_limit_mbps: -1 is out of range"),
        ("[defaults]\nbandwidth_limit_mbps = nan\n", "bandwidth_limit_mbps: nan is out of range"),
        ('[defaults]\ndestination = "moon"\n', "not one of"),
        ("[defaults\n", "config.toml"),
        ('default_profile = "nope"\n', "not a defined profile"),
        ('[profiles.a]\nuser = "u"\n', "missing 'url'"),
        ("colour = 1\n", "unknown top-level"),
        ('[projects.P]\nsession_patern = "{n}"\n', "unknown setting.*session_patern"),
    ],
)
def test_bad_config_is_a_clear_error(isolated_dirs: Path, text: str, fragment: str) -> None:
    (isolated_dirs / "config.toml").write_text(text)
    with pytest.raises(config.ConfigError, match=fragment):
        config.load()


def test_xdg_paths_follow_environment(isolated_dirs: Path) -> None:
    assert config.state_dir() == isolated_dirs / ".local" / "state" / "xnat-tui"
    assert config.cache_dir() == isolated_dirs / ".cache" / "xnat-tui"


def test_defaults_anonymization_applies_under_a_profile_that_names_none(tmp_path: Path) -> None:
    """A profile without `anonymization` leaves the [defaults] choice in force."""
    from xnat_tui.config import load

    path = tmp_path / "config.toml"
    path.write_text(
        '[defaults]\nanonymization = "basic"\n\n'
        '[profiles.work]\nurl = "https://xnat.example.org"\n\n'
        '[profiles.strict]\nurl = "https://xnat.example.org"\nanonymization = "xnat"\n\n'
        '[projects.OPEN]\nanonymization = "none"\n',
        encoding="utf-8",
    )
    cfg = load(path)
    assert cfg.anonymization_for(cfg.profiles["work"], "P") == "basic"
    assert cfg.anonymization_for(cfg.profiles["strict"], "P") == "xnat"
    assert cfg.anonymization_for(cfg.profiles["work"], "OPEN") == "none"


def test_profile_allow_http(isolated_dirs: Path, tmp_path: Path) -> None:
    (isolated_dirs / "config.toml").write_text(
        '[profiles.lab]\nurl = "http://xnat.lab.invalid"\nallow_http = true\n'
        '[profiles.web]\nurl = "https://xnat.invalid"\n'
    )
    cfg = config.load()
    assert cfg.profiles["lab"].allow_http is True
    assert cfg.profiles["web"].allow_http is False
    again = config.load(config.save(cfg, tmp_path / "c.toml"))
    assert again.profiles["lab"].allow_http is True
    assert "allow_http" not in config.to_toml(config.Config(profiles={"w": cfg.profiles["web"]}))
    (isolated_dirs / "config.toml").write_text('[profiles.a]\nurl = "x"\nallow_http = "yes"\n')
    with pytest.raises(config.ConfigError, match="allow_http: expected bool"):
        config.load()
