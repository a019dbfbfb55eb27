"""Who, where and how to log in: shared by the commands and the TUI.

Precedence, most explicit first:

* server: ``--server`` > ``--profile``'s url > ``XNAT_HOST`` > the config's default profile
  (or its only profile);
* user: ``--user`` > the profile's user > ``XNAT_USER`` > the ``~/.netrc`` login for the host
  > a prompt on a terminal;
* password: ``--password-stdin`` > ``XNAT_PASS`` (when ``XNAT_USER`` is unset or names the
  same user) > ``~/.netrc`` (when its login is that user) > a hidden prompt on a terminal;
* TLS: verified unless ``--insecure`` or the profile says ``verify_tls = false``;
  ``--ca-bundle PATH`` (or the profile's ``ca_bundle``) adds a private CA.
* plain ``http://``: only to loopback (127.0.0.0/8, ::1, ``localhost``) unless
  ``--allow-http`` or the profile says ``allow_http = true`` (checked before any prompt;
  the transport checks again before anything is sent).
* a user name in the URL (``https://alice@host``) is the user unless ``--user`` names
  another (then a usage error); a password in the URL is always refused.

An alias token is used like a password: the alias as user, the secret as password.
The password is never written anywhere.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from xnat_tui.config import Config, ConfigError, ServerProfile, config_path, load
from xnat_tui.xnat.credentials import Credentials


@dataclass(frozen=True)
class ConnectionFlags:
    """What the user gave on the command line (empty: not given)."""

    server: str = ""
    user: str = ""
    profile: str = ""
    password_stdin: bool = False
    insecure: bool = False
    ca_bundle: str = ""
    allow_http: bool = False

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> ConnectionFlags:
        """The connection flags of parsed arguments (any of them may be missing)."""
        return cls(
            server=getattr(args, "server", None) or "",
            user=getattr(args, "user", None) or "",
            profile=getattr(args, "profile", None) or "",
            password_stdin=bool(getattr(args, "password_stdin", False)),
            insecure=bool(getattr(args, "insecure", False)),
            ca_bundle=str(getattr(args, "ca_bundle", None) or ""),
            allow_http=bool(getattr(args, "allow_http", False)),
        )


def _usage(message: str, hint: str = "") -> Exception:
    from xnat_tui.xnat.errors import UsageError

    return UsageError(message, hint=hint)


def _same_server(a: str, b: str) -> bool:
    from xnat_tui.xnat.credentials import normalise_server

    try:
        return normalise_server(a) == normalise_server(b)
    except Exception:
        return False


def pick_profile(
    flags: ConnectionFlags, config: Config, server_hint: str
) -> tuple[ServerProfile | None, bool]:
    """(profile, explicit?) — a profile applies when named, or when it is for this server."""
    name = flags.profile
    if name:
        profile = config.profiles.get(name)
        if profile is None:
            known = ", ".join(sorted(config.profiles)) or "none defined"
            raise _usage(
                f"No server profile named {name!r} in {config.path or config_path()} "
                f"(profiles: {known}).",
                hint="Add a [profiles.NAME] table with url = ... to the config file.",
            )
        return profile, True
    if server_hint:
        for profile in config.profiles.values():
            if _same_server(profile.url, server_hint):
                return profile, False
        return None, False
    return config.profile(), False


def resolve_credentials(
    flags: ConnectionFlags,
    config: Config | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    prompt_password: Callable[[str], str] | None = None,
    prompt_user: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> Credentials:
    """Credentials from flags, profile, environment, ``~/.netrc`` or a prompt.

    Raises :class:`~xnat_tui.xnat.errors.UsageError` saying what is missing and how to give it.
    """
    from xnat_tui.xnat.credentials import (
        netrc_credentials,
        normalise_server,
        refuse_cleartext,
        user_from_url,
    )

    env = os.environ if environ is None else environ
    stream = sys.stdin if stdin is None else stdin
    if config is None:
        try:
            config = load()
        except ConfigError as exc:
            raise _usage(str(exc)) from None
    tty = stream.isatty() if interactive is None else interactive

    flag_server = flags.server
    env_server = env.get("XNAT_HOST", "")
    profile, explicit = pick_profile(flags, config, flag_server or env_server)
    if flag_server:
        raw_server = flag_server
    elif explicit and profile is not None:
        raw_server = profile.url
    elif env_server:
        raw_server = env_server
    elif profile is not None:
        raw_server = profile.url
    else:
        raise _usage(
            "No XNAT server given.",
            hint="Pass --server URL, --profile NAME, set XNAT_HOST, or add a profile to "
            f"{config.path or config_path()}.",
        )
    server = normalise_server(raw_server)
    host = urlsplit(server).hostname or ""
    allow_http = flags.allow_http or (profile.allow_http if profile else False)
    # Before a password is asked for or read: it could not be used.
    refuse_cleartext(server, allow_http=allow_http, user=flags.user)

    user = user_from_url(raw_server, flags.user) or (profile.user if profile else "") or ""
    env_user = env.get("XNAT_USER", "")
    if not user and env_user:
        user = env_user
    netrc_login, netrc_password = netrc_credentials(host)
    if not user and netrc_login:
        user = netrc_login

    password, source = "", ""
    if flags.password_stdin:
        line = stream.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise _usage("--password-stdin was given but standard input held no password.")
        source = "stdin"
    if not password and env.get("XNAT_PASS") and (not env_user or env_user == user or not user):
        password, source = env["XNAT_PASS"], "env"
        if not user and env_user:
            user = env_user
    if not password and netrc_password and (not user or user == netrc_login):
        password, source = netrc_password, "netrc"
        user = user or netrc_login
    if not user:
        if not tty:
            raise _usage(
                f"No user name for {server}.",
                hint="Pass --user, set XNAT_USER, add a login to ~/.netrc or to the profile.",
            )
        user = (prompt_user or input)(f"User for {server}: ").strip()
        if not user:
            raise _usage("No user name given.")
    if not password:
        if not tty:
            raise _usage(
                f"No password for {user} at {server}.",
                hint="Use --password-stdin, XNAT_PASS, a ~/.netrc entry "
                f"(machine {host} login {user} password ...), or run in a terminal to be "
                "prompted.",
            )
        what = "alias token secret" if _looks_like_token(user) else "password"
        password = (prompt_password or getpass.getpass)(
            f"{what.capitalize()} for {user} at {server}: "
        )
        if not password:
            raise _usage("No password given.")
        source = "prompt"

    ca_bundle = flags.ca_bundle or (profile.ca_bundle if profile else "") or ""
    verify = not flags.insecure and (profile.verify_tls if profile else True)
    return Credentials(
        server=server,
        user=user,
        password=password,
        verify_tls=verify,
        ca_bundle=ca_bundle,
        allow_http=allow_http,
        source=source,
    )


def _looks_like_token(user: str) -> bool:
    from xnat_tui.xnat.credentials import is_alias_token

    return is_alias_token(user)
