"""Login screen: inline errors by kind, success, offline, profiles."""

from __future__ import annotations

import pytest

from tests.ui.fakes import make_app, to_main, until
from xnat_tui.config import Config, ServerProfile
from xnat_tui.ui.screens.login import LoginScreen
from xnat_tui.ui.screens.main import MainScreen
from xnat_tui.xnat.errors import AuthenticationError, ConnectionFailed, TLSError


@pytest.mark.parametrize(
    ("error", "kind", "shown", "focus"),
    [
        (
            AuthenticationError("refused the credentials of alice"),
            "auth",
            "Wrong user name or password",
            "password",
        ),
        (
            ConnectionFailed("cannot connect to fake.test:443"),
            "unreachable",
            "Server unreachable",
            "url",
        ),
        (TLSError("certificate verify failed"), "tls", "TLS failure", "url"),
    ],
)
async def test_login_errors_are_inline_and_say_which(tmp_path, error, kind, shown, focus):
    app, _, _ = make_app(tmp_path, fail=error)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, LoginScreen)
        await until(pilot, lambda: screen.last_error_kind == kind)
        status = str(screen.query_one("#login-status").render())
        assert shown in status
        assert isinstance(app.screen, LoginScreen)  # still there, nothing crashed
        assert app.focused is not None and app.focused.id == focus


async def test_successful_login_opens_the_workbench(tmp_path):
    app, port, engine = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await to_main(pilot)
        assert app.uploads is not None and app.uploads.engine is engine
        assert "alice @ http://fake.test" in app.sub_title
        # The main screen asked the server for the uploadable projects.
        uploads = app.uploads
        await until(pilot, lambda: uploads.known_projects != [])
        assert [p.id for p in uploads.known_projects] == ["PILOT", "STUDY_A", "STUDY_B"]


async def test_manual_login_with_typed_password(tmp_path):
    from xnat_tui.workflow.login import LoginRequest

    app, _, _ = make_app(
        tmp_path, login=LoginRequest(url="http://fake.test", user="alice"), auto=False
    )
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, LoginScreen)
        assert app.focused is not None and app.focused.id == "password"
        await pilot.press(*"alice")
        await pilot.press("enter")
        await to_main(pilot)


async def test_offline_mode_disables_uploads(tmp_path):
    from xnat_tui.workflow.login import LoginRequest

    app, _, _ = make_app(tmp_path, login=LoginRequest(url="", user=""), auto=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+o")
        screen = await to_main(pilot)
        assert app.uploads is None
        assert screen.check_action("upload", ()) is None
        assert screen.check_action("prearchive", ()) is None


async def test_profiles_fill_the_form(tmp_path):
    cfg = Config(
        default_profile="work",
        profiles={
            "work": ServerProfile("work", "https://xnat.work.test", user="bob"),
            "lab": ServerProfile("lab", "https://xnat.lab.test", user="carol", verify_tls=False),
        },
    )
    app, _, _ = make_app(tmp_path, config=cfg, auto=False)
    app.login = None
    async with app.run_test(size=(110, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, LoginScreen)
        assert screen.query_one("#profiles").display
        assert screen.query_one("#url").value == "https://xnat.work.test"
        await pilot.press("down", "enter")
        await until(pilot, lambda: screen.query_one("#url").value == "https://xnat.lab.test")
        assert screen.query_one("#user").value == "carol"
        assert screen.query_one("#verify").value is False
        assert not isinstance(app.screen, MainScreen)


async def test_real_client_errors_are_told_apart(tmp_path, sandbox):
    """The shipped connector against the sandbox: wrong password vs nothing listening."""
    from xnat_tui.workflow.login import LoginRequest
    from xnat_tui.workflow.login import login as connect

    cases = [
        (LoginRequest(url=sandbox.url, user="alice", password="wrong"), "auth"),
        (LoginRequest(url="http://127.0.0.1:9", user="alice", password="alice"), "unreachable"),
    ]
    for request, kind in cases:
        app, _, _ = make_app(tmp_path, login=request)
        app.connector = connect
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            await until(pilot, lambda s=screen: s.last_error_kind != "", 20)
            assert screen.last_error_kind == kind
    app, _, _ = make_app(
        tmp_path, login=LoginRequest(url=sandbox.url, user="alice", password="alice")
    )
    app.connector = connect
    async with app.run_test(size=(100, 30)) as pilot:
        await to_main(pilot)
        assert app.client is not None and app.uploads is not None
        assert app.uploads.connection.user == "alice"
        await until(pilot, lambda: "PILOT" in [p.id for p in app.uploads.known_projects])
        await app.uploads.close()


async def test_plain_http_to_another_host_is_refused_inline_and_can_be_allowed(
    tmp_path, monkeypatch
):
    """The shipped connector refuses http://xnat.invalid before sending anything; the
    form then shows why, focuses 'Allow plain HTTP', and a login with it ticked asks
    for plain HTTP explicitly."""
    import aiohttp
    from textual.widgets import Checkbox

    from xnat_tui.workflow.login import LoginRequest
    from xnat_tui.workflow.login import login as connect

    sent = []
    original = aiohttp.ClientSession._request

    async def record(self, method, url, **kw):
        sent.append(url)
        return await original(self, method, url, **kw)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", record)
    app, _, _ = make_app(
        tmp_path, login=LoginRequest(url="http://xnat.invalid", user="alice", password="alice")
    )
    app.connector = connect
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.last_error_kind != "", 20)
        assert screen.last_error_kind == "http"
        status = str(screen.query_one("#login-status").render())
        assert "Plain HTTP refused" in status and "--allow-http" in status
        box = screen.query_one("#allow-http", Checkbox)
        assert box.display and app.focused is box and box.value is False
        assert sent == []
        seen = []

        async def recorder(request):
            seen.append(request)
            raise ConnectionFailed("stopped by the test")

        app.connector = recorder
        await pilot.press("space", "ctrl+s")
        await until(pilot, lambda: seen != [])
        assert seen[0].allow_http is True
        assert isinstance(app.screen, LoginScreen)


async def test_the_allow_http_box_shows_only_for_http_to_another_host(tmp_path):
    from textual.widgets import Checkbox

    cfg = Config(
        profiles={"lab": ServerProfile("lab", "http://xnat.lab.test", user="c", allow_http=True)}
    )
    app, _, _ = make_app(tmp_path, config=cfg, auto=False)
    app.login = None
    async with app.run_test(size=(110, 30)) as pilot:
        screen = app.screen
        box = screen.query_one("#allow-http", Checkbox)
        await until(pilot, lambda: screen.query_one("#url").value == "http://xnat.lab.test")
        assert box.display and box.value is True  # the profile allows it
        url = screen.query_one("#url")
        url.value = "https://xnat.lab.test"
        await until(pilot, lambda: not box.display)
        url.value = "http://127.0.0.1:8080"
        await pilot.pause()
        assert not box.display
        url.value = "http://xnat.other.test"
        await until(pilot, lambda: box.display)
