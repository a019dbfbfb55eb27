"""Start and stop the sandbox (the team's "Sandbox contract").

* ``await start_sandbox(data_dir, *, host="127.0.0.1", port=0, demo=False,
  faults=None, session_timeout=900, autobuild_interval=300, import_limits=None)
  -> SandboxServer`` — serves on the running event loop (after removing the temporary
  files of uploads a kill cut off). ``SandboxServer``: ``url``
  (``http://127.0.0.1:PORT``), ``host``, ``port``, ``data_dir``, ``faults``
  (``FaultInjector``: ``configure(spec)``/``clear()`` at run time), ``import_limits``
  (``limits.ImportLimits``, replaceable at run time), ``store``, ``app``,
  ``await close()`` (stops running imports at once); also an async context manager.
  With ``dicom_port`` (0: any free port) a DICOM C-STORE receiver runs too
  (``sandbox.dicom_receiver``): ``dicom`` is the ``DicomReceiver`` (``.port``,
  ``.ae_title``); ``dicom_idle`` is then the idle time after which received sessions are
  built (XNAT's one ``sessionXmlRebuilderInterval``), ``dicom_rules`` its custom routing
  rules, ``dicom_allowed`` the calling AE allow-list.
* ``SandboxThread(data_dir, demo=True, ...)`` — the same server on its own event
  loop in a daemon thread, for sync code (xnatpy, the TUI's ``--sandbox``):
  ``with SandboxThread(d) as sb: sb.url``; or ``start()`` / ``stop()``;
  ``.server`` gives the ``SandboxServer``; ``call(fn)`` runs ``fn()`` on the
  server's loop (for tests that touch the store or faults from another thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from xnat_tui.dicom.routing import RuleSet
from xnat_tui.sandbox import demo as demo_seed
from xnat_tui.sandbox.app import make_app
from xnat_tui.sandbox.dicom_receiver import DicomReceiver
from xnat_tui.sandbox.faults import FaultInjector
from xnat_tui.sandbox.keys import SETTINGS
from xnat_tui.sandbox.limits import ImportLimits
from xnat_tui.sandbox.store import Store

T = TypeVar("T")


class SandboxServer:
    def __init__(
        self,
        *,
        app: web.Application,
        runner: web.AppRunner,
        store: Store,
        faults: FaultInjector,
        host: str,
        port: int,
        data_dir: Path,
    ) -> None:
        self.app = app
        self.store = store
        self.faults = faults
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self._runner = runner
        self._closed = False
        self.dicom: DicomReceiver | None = None

    @property
    def url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            # Bound to every interface: clients on this machine still use loopback.
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def import_limits(self) -> ImportLimits:
        return self.app[SETTINGS].import_limits

    @import_limits.setter
    def import_limits(self, limits: ImportLimits) -> None:
        self.app[SETTINGS].import_limits = limits

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.dicom is not None:
            await asyncio.to_thread(self.dicom.stop)
        await self._runner.cleanup()
        self.store.close()

    async def __aenter__(self) -> SandboxServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def start_sandbox(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    demo: bool = False,
    faults: str | None = None,
    session_timeout: float = 900,
    autobuild_interval: float = 300,
    import_limits: ImportLimits | None = None,
    dicom_port: int | None = None,
    dicom_ae: str = "XNAT",
    dicom_idle: float = 5.0,
    dicom_rules: RuleSet | None = None,
    dicom_allowed: tuple[str, ...] = (),
) -> SandboxServer:
    data_dir = Path(data_dir)
    if dicom_port is not None:
        autobuild_interval = dicom_idle
        if demo and dicom_rules is None:
            dicom_rules = demo_seed.DICOM_RULES
    injector = FaultInjector(faults)  # parse first: a bad spec fails before anything starts
    store = Store(data_dir)
    try:
        if demo:
            # DICOM writing is blocking file I/O; keep the loop free while it runs.
            await asyncio.to_thread(demo_seed.seed, store)
        app = make_app(
            store,
            faults=injector,
            session_timeout=session_timeout,
            autobuild_interval=autobuild_interval,
            import_limits=import_limits,
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        store.close()
        raise
    bound = port
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    if sockets:
        bound = int(sockets[0].getsockname()[1])
    server_ = SandboxServer(
        app=app,
        runner=runner,
        store=store,
        faults=injector,
        host=host,
        port=bound,
        data_dir=data_dir,
    )
    if dicom_port is not None:
        receiver = DicomReceiver(
            app,
            asyncio.get_running_loop(),
            ae_title=dicom_ae,
            host=host,
            port=dicom_port,
            rules=dicom_rules,
            allowed_calling=dicom_allowed,
        )
        try:
            server_.dicom = await asyncio.to_thread(receiver.start)
        except BaseException:
            await server_.close()
            raise
    return server_


class SandboxThread:
    def __init__(self, data_dir: Path, demo: bool = True, **options: Any) -> None:
        self.data_dir = Path(data_dir)
        self.demo = demo
        self.options = options
        self.server: SandboxServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("sandbox not started")
        return self.server.url

    @property
    def port(self) -> int:
        if self.server is None:
            raise RuntimeError("sandbox not started")
        return self.server.port

    def start(self, timeout: float = 30.0) -> SandboxThread:
        ready: concurrent.futures.Future[SandboxServer] = concurrent.futures.Future()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            try:
                server = await start_sandbox(self.data_dir, demo=self.demo, **self.options)
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(server)
            try:
                await self._stopped.wait()
            finally:
                await server.close()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="xnat-tui-sandbox", daemon=True
        )
        self._thread.start()
        self.server = ready.result(timeout=timeout)
        return self

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn()`` on the server's event loop thread and return its result."""
        if self._loop is None:
            raise RuntimeError("sandbox not started")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stopped.set)
                self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
