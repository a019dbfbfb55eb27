"""Profiles and login. Errors are shown inline and say which kind of failure it was."""

from __future__ import annotations

import logging
import os

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from xnat_tui.ui.screens.base import AppScreen
from xnat_tui.ui.widgets.format import plain
from xnat_tui.workflow.login import LoginRequest, needs_http_consent

log = logging.getLogger("xnat_tui.ui")


def explain(error: BaseException) -> tuple[str, str]:
    """(kind, sentence) for a login failure: wrong password vs unreachable vs TLS."""
    from xnat_tui.xnat import errors as xe

    hint = getattr(error, "hint", "")
    text = str(error) or type(error).__name__
    if hint:
        text = f"{text}\n{hint}"
    if isinstance(error, xe.TLSError):
        return "tls", f"TLS failure: {text}"
    if isinstance(error, xe.AuthenticationError):
        return "auth", f"Wrong user name or password: {text}"
    if isinstance(error, xe.ConnectionFailed):
        return "unreachable", f"Server unreachable: {text}"
    if isinstance(error, xe.CleartextRefused):
        return "http", f"Plain HTTP refused: {text}"
    if isinstance(error, xe.UsageError):
        return "usage", text
    if isinstance(error, OSError):
        return "unreachable", f"Server unreachable: {text}"
    return "error", text


class LoginScreen(AppScreen, Screen[None]):
    HELP_GROUP = "Login"
    BINDINGS = [
        Binding(
            "ctrl+s",
            "connect",
            "Connect",
            tooltip="Log in with the values shown",
            id="login.connect",
        ),
        Binding(
            "ctrl+o",
            "offline",
            "Offline",
            tooltip="Browse and scan without a server",
            id="login.offline",
        ),
    ]

    def __init__(self, request: LoginRequest | None = None, *, auto: bool = False) -> None:
        super().__init__()
        self.request = request
        self.auto = auto
        self.last_error_kind = ""

    def compose(self) -> ComposeResult:
        cfg = self.xapp.config
        req = self.request
        yield Header()
        with Horizontal(id="login-body"):
            profiles = OptionList(
                *[Option(plain(f"{p.name}  {p.url}"), id=p.name) for p in cfg.profiles.values()],
                id="profiles",
            )
            profiles.border_title = "Profiles"
            # --server/--user (or --sandbox) skip the profile list.
            profiles.display = bool(cfg.profiles) and req is None
            yield profiles
            with Vertical(id="login-form") as form:
                form.border_title = "Log in"
                yield Label("Server URL")
                yield Input(
                    req.url if req else "", placeholder="https://xnat.example.org", id="url"
                )
                yield Label("User (or alias token)")
                yield Input(req.user if req else "", placeholder="user name", id="user")
                yield Label("Password (or token secret)")
                yield Input(req.password if req else "", password=True, id="password")
                yield Checkbox(
                    "Verify TLS certificate", value=req.verify_tls if req else True, id="verify"
                )
                # Shown only for http:// to another machine (needs_http_consent).
                allow = Checkbox(
                    "Allow plain HTTP (the password crosses the network unencrypted)",
                    value=req.allow_http if req else False,
                    id="allow-http",
                )
                allow.display = needs_http_consent(req.url) if req else False
                yield allow
                with Horizontal(classes="buttons"):
                    yield Button("Connect", id="connect", variant="primary")
                    yield Button("Work offline", id="offline")
                yield Static("", id="login-status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        cfg = self.xapp.config
        if self.request is None and cfg.profiles:
            default = cfg.profile()
            if default is not None:
                self._fill_profile(default.name)
            self.query_one("#profiles").focus()
        else:
            self._focus_first_empty()
        if self.auto:
            self.action_connect()

    def _focus_first_empty(self) -> None:
        for wid in ("#url", "#user", "#password"):
            field = self.query_one(wid, Input)
            if not field.value:
                field.focus()
                return
        self.query_one("#connect").focus()

    def _fill_profile(self, name: str) -> None:
        profile = self.xapp.config.profiles.get(name)
        if profile is None:
            return
        self.query_one("#url", Input).value = profile.url
        self.query_one("#user", Input).value = profile.user or os.environ.get("XNAT_USER", "")
        self.query_one("#verify", Checkbox).value = profile.verify_tls
        self.query_one("#allow-http", Checkbox).value = profile.allow_http
        self.request = LoginRequest(
            url=profile.url,
            user=profile.user,
            verify_tls=profile.verify_tls,
            ca_bundle=profile.ca_bundle,
            profile=profile.name,
            allow_http=profile.allow_http,
        )

    @on(OptionList.OptionSelected, "#profiles")
    def _profile_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self._fill_profile(event.option.id)
            self._focus_first_empty()

    @on(Input.Changed, "#url")
    def _url_changed(self, event: Input.Changed) -> None:
        self.query_one("#allow-http", Checkbox).display = needs_http_consent(event.value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_connect()

    @on(Button.Pressed, "#connect")
    def _connect_pressed(self) -> None:
        self.action_connect()

    @on(Button.Pressed, "#offline")
    def _offline_pressed(self) -> None:
        self.action_offline()

    def current_request(self) -> LoginRequest:
        base = self.request
        return LoginRequest(
            url=self.query_one("#url", Input).value.strip(),
            user=self.query_one("#user", Input).value.strip(),
            password=self.query_one("#password", Input).value,
            verify_tls=self.query_one("#verify", Checkbox).value,
            ca_bundle=base.ca_bundle if base else "",
            profile=base.profile if base else "",
            allow_http=self.query_one("#allow-http", Checkbox).value,
        )

    def show_status(self, text: str, kind: str) -> None:
        status = self.query_one("#login-status", Static)
        # A server's error message or a URL: plain text, never markup.
        status.update(plain(text, lines=True))
        status.set_classes(f"status -{kind}")

    def action_connect(self) -> None:
        request = self.current_request()
        if not request.url:
            self.show_status("Enter the server URL.", "error")
            self.query_one("#url").focus()
            return
        self.show_status(f"Connecting to {request.url}…", "busy")
        self._login(request)

    @work(group="login", exclusive=True, exit_on_error=False)
    async def _login(self, request: LoginRequest) -> None:
        try:
            connection = await self.xapp.connector(request)
        except Exception as exc:  # every failure is explained inline, none is fatal
            kind, text = explain(exc)
            self.last_error_kind = kind
            log.warning("login to %s failed (%s): %s", request.url, kind, exc)
            self.show_status(text, "error")
            target = {"auth": "#password", "http": "#allow-http"}.get(kind, "#url")
            if kind == "http":
                self.query_one(target).display = True
            self.query_one(target).focus()
            return
        self.last_error_kind = ""
        self.show_status(f"Logged in as {connection.user}.", "ok")
        # Run on the App: this screen (and its workers) goes away during the switch.
        self.app.run_worker(
            self.xapp.logged_in(connection), group="login-done", exit_on_error=False
        )

    def action_offline(self) -> None:
        self.app.run_worker(self.xapp.go_offline(), group="login-done", exit_on_error=False)
