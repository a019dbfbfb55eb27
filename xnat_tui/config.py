"""Typed configuration: TOML on disk, dataclasses in memory, XDG paths.

The config never holds a password: credentials come from a prompt, ``~/.netrc``,
the environment or an alias token at run time.
"""

from __future__ import annotations

import contextlib
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

APP_NAME = "xnat-tui"
CONFIG_ENV = "XNAT_TUI_CONFIG"

DESTINATIONS = ("project", "prearchive", "archive")
OVERWRITE_MODES = ("none", "append", "delete")
ANON_PROFILES = ("none", "xnat", "basic")

DEFAULT_ROUTING_PATTERNS: tuple[dict[str, str], ...] = (
    {
        "tag": "StudyDescription",
        "regex": r"xnat://(?P<project>[\w-]+)/(?P<subject>[\w-]+)/(?P<session>[\w-]+)",
    },
)


class ConfigError(Exception):
    """The config file exists but cannot be used; the message says where and why."""


def _xdg(env: str, fallback: str) -> Path:
    value = os.environ.get(env, "")
    # XDG says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


# The bandwidth cap, in megabit/s: 0 means unlimited; anything else lies in this range.
# Below 0.1 Mbit/s (12.5 kB/s) a DICOM series takes hours; a value like 1e-300 would
# make the upload wait forever, and a negative or NaN one is a typo, never a wish.
MIN_BANDWIDTH_MBPS = 0.1
MAX_BANDWIDTH_MBPS = 1_000_000.0
BANDWIDTH_RANGE = f"0 (unlimited) or {MIN_BANDWIDTH_MBPS:g} to {MAX_BANDWIDTH_MBPS:,.0f} Mbit/s"


def check_bandwidth(mbps: float) -> float:
    """``mbps`` if it is a usable cap (see :data:`BANDWIDTH_RANGE`); ValueError otherwise."""
    value = float(mbps)
    if value == 0:
        return 0.0
    if not math.isfinite(value) or not MIN_BANDWIDTH_MBPS <= value <= MAX_BANDWIDTH_MBPS:
        raise ValueError(f"bandwidth {mbps!r} is out of range: give {BANDWIDTH_RANGE}")
    return value


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return _xdg("XDG_CONFIG_HOME", ".config") / APP_NAME / "config.toml"


def state_dir() -> Path:
    """Journal, receipts and logs: things that must survive a restart.

    Created 0700 (and tightened with what it holds if an older version left it open to
    others): the journal and receipts name patients, labels and paths.
    """
    return _private(_xdg("XDG_STATE_HOME", ".local/state") / APP_NAME)


def cache_dir() -> Path:
    """Rescan cache and server listings: safe to delete at any time. Private as
    :func:`state_dir` is: the scan cache holds DICOM headers."""
    return _private(_xdg("XDG_CACHE_HOME", ".cache") / APP_NAME)


def _private(path: Path) -> Path:
    from xnat_tui.private import private_tree

    try:
        private_tree(path)
    except OSError:
        pass  # a read-only home: whoever writes there says so, with the path
    return path


@dataclass
class ServerProfile:
    name: str
    url: str
    user: str = ""
    verify_tls: bool = True
    ca_bundle: str = ""
    # Plain http:// to a host that is not loopback (the password would cross the network
    # unencrypted): refused unless the profile says so.
    allow_http: bool = False
    # Anonymization applied client-side for this server unless a project overrides it.
    anonymization: str = ""  # "" = the [defaults] choice


@dataclass
class RoutingPattern:
    """A site convention that carries project/subject/session in a DICOM text field."""

    tag: str
    regex: str


@dataclass
class ProjectPreferences:
    """The user's own choices for one project (``[projects.ID]``); empty means "use the
    defaults". Not the server's settings of the project (``xnat.models.ProjectSettings``)."""

    anonymization: str = ""
    subject_pattern: str = ""
    session_pattern: str = ""


@dataclass
class Defaults:
    concurrency: int = 4
    destination: str = "project"
    overwrite: str = "none"
    subject_pattern: str = "{PatientID}"
    session_pattern: str = "{subject}_{Modality}_{n}"
    theme: str = "textual-dark"
    bandwidth_limit_mbps: float = 0.0
    anonymization: str = "none"
    routing_patterns: list[RoutingPattern] = field(
        default_factory=lambda: [RoutingPattern(**p) for p in DEFAULT_ROUTING_PATTERNS]
    )


@dataclass
class DicomProfile:
    """A DICOM receiver to send to (``[dicom.NAME]``): no credentials, only addresses."""

    name: str
    ae: str
    host: str
    port: int = 8104
    calling_ae: str = "XNAT_TUI"
    # How the project/subject/session reach XNAT in the copies sent: XNAT's own
    # "Project: P Subject: S Session: E" form (in routing_tag), the site template in
    # StudyDescription, or none (files sent as they are).
    routing: str = "xnat"
    routing_tag: str = "PatientComments"
    site_template: str = "xnat://{project}/{subject}/{session}"
    # The receiver's idle time before a session counts as complete (XNAT: 5 minutes);
    # the sender looks the session up through REST only after it.
    idle_seconds: float = 300.0
    verify: bool = True


DOWNLOAD_LAYOUTS = ("xnat", "session", "flat")


@dataclass
class DownloadSettings:
    """``[download]``: how ``xnat-tui download`` and the browser's Download… save files."""

    jobs: int = 8  # files fetched at once
    layout: str = "xnat"  # xnat | session | flat
    out_dir: str = ""  # default folder ('' = ./xnat-downloads)
    resource: str = "DICOM"  # resource label(s) to fetch (comma list, or ALL)


def _parse_download(raw: dict[str, Any]) -> DownloadSettings:
    unknown = set(raw) - set(DownloadSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[download]: unknown setting {sorted(unknown)[0]!r}")
    jobs = _expect(raw.get("jobs", 8), int, "[download] jobs")
    if isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise ConfigError("[download] jobs: give a number of files from 1 to 64")
    return DownloadSettings(
        jobs=jobs,
        layout=_choice(
            _expect(raw.get("layout", "xnat"), str, "[download] layout"),
            DOWNLOAD_LAYOUTS,
            "[download] layout",
        ),
        out_dir=_expect(raw.get("out_dir", ""), str, "[download] out_dir"),
        resource=_expect(raw.get("resource", "DICOM"), str, "[download] resource") or "DICOM",
    )


@dataclass
class CopyDefaults:
    """``[copy]``: defaults of ``xnat-tui copy``/``move`` and the browser's Copy/Move…"""

    destination: str = ""  # project | prearchive | archive; "" = [defaults] destination
    anonymization: str = "none"  # none | xnat | basic (not [defaults]: a copy keeps data)
    subject_pattern: str = "{routing.subject}"  # the source's labels are kept
    session_pattern: str = "{routing.session}"


def _parse_copy(raw: dict[str, Any]) -> CopyDefaults:
    unknown = set(raw) - set(CopyDefaults.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[copy]: unknown setting {sorted(unknown)[0]!r}")
    where = _expect(raw.get("destination", ""), str, "[copy] destination")
    anon = _expect(raw.get("anonymization", "none"), str, "[copy] anonymization")
    return CopyDefaults(
        destination=_choice(where, DESTINATIONS, "[copy] destination") if where else "",
        anonymization=_choice(anon, ANON_PROFILES, "[copy] anonymization"),
        subject_pattern=_expect(
            raw.get("subject_pattern", "{routing.subject}"), str, "[copy] subject_pattern"
        ),
        session_pattern=_expect(
            raw.get("session_pattern", "{routing.session}"), str, "[copy] session_pattern"
        ),
    )


DICOM_ROUTING = ("xnat", "site", "none")
_DICOM_KEYS = {f for f in DicomProfile.__dataclass_fields__ if f != "name"}


@dataclass
class Config:
    default_profile: str = ""
    profiles: dict[str, ServerProfile] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)
    # Binding id -> key(s), e.g. {"upload.queue": "ctrl+u"}.
    keymap: dict[str, str] = field(default_factory=dict)
    projects: dict[str, ProjectPreferences] = field(default_factory=dict)
    path: Path | None = None
    dicom: dict[str, DicomProfile] = field(default_factory=dict)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    copy: CopyDefaults = field(default_factory=CopyDefaults)

    def profile(self, name: str | None = None) -> ServerProfile | None:
        key = name or self.default_profile
        if key:
            return self.profiles.get(key)
        if len(self.profiles) == 1:
            return next(iter(self.profiles.values()))
        return None

    def anonymization_for(self, profile: ServerProfile | None, project: str) -> str:
        per_project = self.projects.get(project)
        if per_project and per_project.anonymization:
            return per_project.anonymization
        if profile and profile.anonymization:
            return profile.anonymization
        return self.defaults.anonymization


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: expected {names}, got {value!r}")
    return value


def _choice(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _parse_defaults(raw: dict[str, Any]) -> Defaults:
    d = Defaults()
    where = "[defaults]"
    known = {f for f in d.__dataclass_fields__}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}")
    if "concurrency" in raw:
        d.concurrency = _expect(raw["concurrency"], int, f"{where} concurrency")
        if not 1 <= d.concurrency <= 32:
            raise ConfigError(f"{where} concurrency: must be between 1 and 32")
    if "destination" in raw:
        d.destination = _choice(
            _expect(raw["destination"], str, where), DESTINATIONS, f"{where} destination"
        )
    if "overwrite" in raw:
        d.overwrite = _choice(
            _expect(raw["overwrite"], str, where), OVERWRITE_MODES, f"{where} overwrite"
        )
    if "anonymization" in raw:
        d.anonymization = _choice(
            _expect(raw["anonymization"], str, where), ANON_PROFILES, f"{where} anonymization"
        )
    for key in ("subject_pattern", "session_pattern", "theme"):
        if key in raw:
            setattr(d, key, _expect(raw[key], str, f"{where} {key}"))
    if "bandwidth_limit_mbps" in raw:
        value = _expect(raw["bandwidth_limit_mbps"], (int, float), f"{where} bandwidth_limit_mbps")
        try:
            d.bandwidth_limit_mbps = check_bandwidth(value)
        except ValueError:
            raise ConfigError(
                f"{where} bandwidth_limit_mbps: {value!r} is out of range: give {BANDWIDTH_RANGE}"
            ) from None
    if "routing_patterns" in raw:
        patterns = _expect(raw["routing_patterns"], list, f"{where} routing_patterns")
        d.routing_patterns = []
        for i, item in enumerate(patterns):
            item = _expect(item, dict, f"{where} routing_patterns[{i}]")
            try:
                d.routing_patterns.append(RoutingPattern(tag=item["tag"], regex=item["regex"]))
            except KeyError as exc:
                raise ConfigError(
                    f"{where} routing_patterns[{i}]: missing {exc.args[0]!r}"
                ) from None
    return d


def _parse(raw: dict[str, Any], path: Path | None) -> Config:
    cfg = Config(path=path)
    for key in raw:
        if key not in (
            "default_profile",
            "profiles",
            "defaults",
            "keymap",
            "projects",
            "dicom",
            "download",
            "copy",
        ):
            raise ConfigError(f"unknown top-level setting {key!r}")
    cfg.default_profile = _expect(raw.get("default_profile", ""), str, "default_profile")
    profiles = _expect(raw.get("profiles", {}), dict, "[profiles]")
    for name, body in profiles.items():
        where = f"[profiles.{name}]"
        body = _expect(body, dict, where)
        if "password" in body:
            raise ConfigError(
                f"{where}: passwords are never read from the config; "
                "use the prompt, ~/.netrc, XNAT_PASS or an alias token"
            )
        if "url" not in body:
            raise ConfigError(f"{where}: missing 'url'")
        unknown = set(body) - {
            "url",
            "user",
            "verify_tls",
            "ca_bundle",
            "allow_http",
            "anonymization",
        }
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
        cfg.profiles[name] = ServerProfile(
            name=name,
            url=_expect(body["url"], str, f"{where} url").rstrip("/"),
            user=_expect(body.get("user", ""), str, f"{where} user"),
            verify_tls=_expect(body.get("verify_tls", True), bool, f"{where} verify_tls"),
            ca_bundle=_expect(body.get("ca_bundle", ""), str, f"{where} ca_bundle"),
            allow_http=_expect(body.get("allow_http", False), bool, f"{where} allow_http"),
            anonymization=_choice(
                _expect(body.get("anonymization", ""), str, where),
                ("", *ANON_PROFILES),
                f"{where} anonymization",
            ),
        )
    if cfg.default_profile and cfg.default_profile not in cfg.profiles:
        raise ConfigError(f"default_profile {cfg.default_profile!r} is not a defined profile")
    cfg.defaults = _parse_defaults(_expect(raw.get("defaults", {}), dict, "[defaults]"))
    keymap = _expect(raw.get("keymap", {}), dict, "[keymap]")
    cfg.keymap = {str(k): _expect(v, str, f"[keymap] {k}") for k, v in keymap.items()}
    projects = _expect(raw.get("projects", {}), dict, "[projects]")
    for pid, body in projects.items():
        where = f"[projects.{pid}]"
        body = _expect(body, dict, where)
        unknown = set(body) - {"anonymization", "subject_pattern", "session_pattern"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
        anon = _expect(body.get("anonymization", ""), str, f"{where} anonymization")
        if anon:
            _choice(anon, ANON_PROFILES, f"{where} anonymization")
        cfg.projects[pid] = ProjectPreferences(
            anonymization=anon,
            subject_pattern=_expect(body.get("subject_pattern", ""), str, where),
            session_pattern=_expect(body.get("session_pattern", ""), str, where),
        )
    cfg.dicom = _parse_dicom(_expect(raw.get("dicom", {}), dict, "[dicom]"))
    cfg.download = _parse_download(_expect(raw.get("download", {}), dict, "[download]"))
    cfg.copy = _parse_copy(_expect(raw.get("copy", {}), dict, "[copy]"))
    return cfg


def _parse_dicom(raw: dict[str, Any]) -> dict[str, DicomProfile]:
    out: dict[str, DicomProfile] = {}
    for name, body in raw.items():
        where = f"[dicom.{name}]"
        body = _expect(body, dict, where)
        unknown = set(body) - _DICOM_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
        for key in ("ae", "host"):
            if key not in body:
                raise ConfigError(f"{where}: missing {key!r}")
        port = _expect(body.get("port", 8104), int, f"{where} port")
        if not 1 <= port <= 65535:
            raise ConfigError(f"{where} port: must be 1..65535")
        idle = float(_expect(body.get("idle_seconds", 300.0), (int, float), f"{where} idle"))
        if not math.isfinite(idle) or idle < 0:
            raise ConfigError(f"{where} idle_seconds: a number of seconds >= 0")
        out[name] = DicomProfile(
            name=name,
            ae=_expect(body["ae"], str, f"{where} ae"),
            host=_expect(body["host"], str, f"{where} host"),
            port=port,
            calling_ae=_expect(body.get("calling_ae", "XNAT_TUI"), str, f"{where} calling_ae"),
            routing=_choice(
                _expect(body.get("routing", "xnat"), str, where), DICOM_ROUTING, f"{where} routing"
            ),
            routing_tag=_expect(body.get("routing_tag", "PatientComments"), str, where),
            site_template=_expect(
                body.get("site_template", DicomProfile.site_template), str, where
            ),
            idle_seconds=idle,
            verify=_expect(body.get("verify", True), bool, f"{where} verify"),
        )
    return out


def load(path: Path | None = None) -> Config:
    """Read the config; a missing file gives the defaults, a broken one a ConfigError."""
    target = path or config_path()
    try:
        with open(target, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        return Config(path=target)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{target}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{target}: {exc.strerror}") from None
    try:
        return _parse(raw, target)
    except ConfigError as exc:
        raise ConfigError(f"{target}: {exc}") from None


def to_toml(cfg: Config) -> str:
    body: dict[str, Any] = {}
    if cfg.default_profile:
        body["default_profile"] = cfg.default_profile
    body["profiles"] = {
        name: {
            k: v
            for k, v in asdict(p).items()
            if k != "name" and v != "" and not (k == "allow_http" and v is False)
        }
        for name, p in cfg.profiles.items()
    }
    body["defaults"] = asdict(cfg.defaults)
    if cfg.keymap:
        body["keymap"] = dict(cfg.keymap)
    if cfg.dicom:
        body["dicom"] = {
            name: {k: v for k, v in asdict(d).items() if k != "name"}
            for name, d in cfg.dicom.items()
        }
    if cfg.download != DownloadSettings():
        body["download"] = asdict(cfg.download)
    if cfg.copy != CopyDefaults():
        body["copy"] = asdict(cfg.copy)
    if cfg.projects:
        body["projects"] = {
            pid: {k: v for k, v in asdict(s).items() if v} for pid, s in cfg.projects.items()
        }
    return tomli_w.dumps(body)


def save(cfg: Config, path: Path | None = None) -> Path:
    """Write atomically so a crash never leaves half a config behind.

    The file is 0600 (it names servers, users and projects); a folder created for it
    is 0700, an existing one is left as it is (it may be the user's own).
    """
    from xnat_tui.private import open_private

    target = path or cfg.path or config_path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover keeps its mode: start afresh
    with os.fdopen(open_private(tmp), "w", encoding="utf-8") as fh:
        fh.write(to_toml(cfg))
    os.replace(tmp, target)
    cfg.path = target
    return target
