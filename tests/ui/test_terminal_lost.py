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
    real_stop = app.services.stop

    async def stop() -> None:
        stopped.append(True)
        await real_stop()

    monkeypatch.setattr(app.services, "stop", stop)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await to_main(pilot)
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
