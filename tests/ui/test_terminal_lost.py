"""When the terminal goes away without a SIGHUP reaching the app, the app exits.

Seen in testing: ``make demo`` in a tmux pane that was closed. make (the session
leader) got the hang-up, the app did not, and Textual's input thread spun on
end-of-file at 100% CPU for good. On a login node that is everyone's CPU.
"""

from __future__ import annotations

import os

import pytest

from tests.ui.fakes import make_app, to_main, until
from xnat_tui.ui import app as app_module


async def test_the_app_exits_when_its_terminal_is_hung_up(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _, _ = make_app(tmp_path)
    master, slave = os.openpty()  # a real terminal to watch
    monkeypatch.setattr(app_module, "TERMINAL_CHECK", 0.05)
    stopped: list[bool] = []
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await to_main(pilot)
            uploads = app.uploads
            assert uploads is not None
            real_stop = uploads.close

            async def stop() -> None:
                stopped.append(True)
                await real_stop()

            monkeypatch.setattr(uploads, "close", stop)
            app._watch_terminal(slave)
            await pilot.pause(0.3)
            assert app.is_running and not stopped  # still a terminal: nothing happens
            real_isatty = os.isatty
            monkeypatch.setattr(
                app_module.os, "isatty", lambda fd: False if fd == slave else real_isatty(fd)
            )
            await until(pilot, lambda: bool(stopped), 10)
    finally:
        os.close(master)
        os.close(slave)
    assert stopped == [True]  # transfers stopped once, to resume next time
    assert app.return_code == 0


async def test_without_a_terminal_nothing_is_watched(tmp_path) -> None:
    app, _, _ = make_app(tmp_path)
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await to_main(pilot)
            app._watch_terminal(fd)
            assert not [t for t in app._timers if t.name == "tty"]
    finally:
        os.close(fd)


async def test_a_quit_and_a_lost_terminal_shut_down_once(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    app, _, _ = make_app(tmp_path)
    calls: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await to_main(pilot)
        assert app.uploads is not None
        real_stop = app.uploads.close

        async def slow_stop() -> None:
            calls.append("stop")
            await asyncio.sleep(0.2)  # the engine takes a while to close
            await real_stop()

        monkeypatch.setattr(app.uploads, "close", slow_stop)
        await asyncio.gather(app._shutdown_and_exit(), app._shutdown_and_exit())
    assert calls == ["stop"]


def test_keys_come_from_the_terminal_when_stdin_is_not_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``echo pw | xnat-tui --password-stdin``: Textual must not read the spent pipe."""
    from xnat_tui.ui import launch

    fake_tty = 987_654
    moved: list[tuple[int, int]] = []
    closed: list[int] = []
    monkeypatch.setattr(launch.os, "isatty", lambda fd: False)
    monkeypatch.setattr(launch.os, "open", lambda path, flags: fake_tty)
    monkeypatch.setattr(launch.os, "dup2", lambda a, b: moved.append((a, b)))
    monkeypatch.setattr(launch.os, "close", lambda fd: closed.append(fd))
    assert launch.keys_from_terminal() == ""
    assert moved == [(fake_tty, 0)] and closed == [fake_tty]

    def no_terminal(path: str, flags: int) -> int:
        raise OSError(6, "No such device or address")

    monkeypatch.setattr(launch.os, "open", no_terminal)
    assert "no terminal to read keys from" in launch.keys_from_terminal()
    monkeypatch.setattr(launch.os, "isatty", lambda fd: True)
    moved.clear()
    assert launch.keys_from_terminal() == "" and moved == []
