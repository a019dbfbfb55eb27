"""Why the TUI's event loop was late: diagnostics for ``benchmarks/ui_lag.py --diagnose``.

Three views, all Linux-specific where they read /proc:

* ``thread_cpu()``: CPU seconds per thread of this process (who competes with the
  event loop for the GIL);
* ``LateTicks``: for each late probe tick, how much CPU the main thread used and how
  long it waited on a run queue (the OS gave the core to another process) versus the
  other threads' CPU in the same interval;
* ``SlowCallbacks``: every event-loop callback that ran for more than 20 ms, with its
  CPU time and the widgets it rendered (and how long each took), plus a count of
  layout refreshes and footer rebuilds by origin -- a layout re-renders the screen.

They patch asyncio and Textual at run time; use them to find a stall, not to measure.
"""

from __future__ import annotations

import asyncio.events
import collections
import os
import threading
import time
import traceback
from typing import Any


def _thread_names() -> dict[int | None, str]:
    return {t.native_id: t.name for t in threading.enumerate()}


def short_thread_name(name: str) -> str:
    """ "dicom-scan_0" -> "dicom-scan": one name for a pool's threads."""
    return name.split("(")[0].rstrip("-_0123456789") or name


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by each live thread of this process, by thread name."""
    names = _thread_names()
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = collections.defaultdict(float)
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = (
            "MAIN" if int(tid) == os.getpid() else short_thread_name(names.get(int(tid), "other"))
        )
        out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def _schedstat() -> dict[str, tuple[int, int]]:
    """Per thread: (ns on a CPU, ns runnable but waiting for one)."""
    names = _thread_names()
    out: dict[str, tuple[int, int]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                on_cpu, waiting, _slices = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
        name = "MAIN" if int(tid) == os.getpid() else f"{names.get(int(tid), 'other')}/{tid}"
        out[name] = (on_cpu, waiting)
    return out


class LateTicks:
    """Call ``tick(lag_ms)`` after every probe tick; late ones are explained on stdout."""

    def __init__(self, threshold_ms: float = 30.0) -> None:
        self.threshold = threshold_ms
        self._last: dict[str, tuple[int, int]] | None = None

    def tick(self, lag_ms: float) -> None:
        now = _schedstat()
        last, self._last = self._last, now
        if last is None or lag_ms <= self.threshold:
            return
        delta = {
            k: (v[0] - last.get(k, (0, 0))[0], v[1] - last.get(k, (0, 0))[1])
            for k, v in now.items()
        }
        main = delta.pop("MAIN", (0, 0))
        busy = sorted(delta.items(), key=lambda kv: -kv[1][0])
        others = ", ".join(f"{k} cpu {v[0] / 1e6:.0f}" for k, v in busy if v[0] > 1_000_000)
        print(
            f"   late {lag_ms:.0f} ms: main thread cpu {main[0] / 1e6:.0f} ms, "
            f"waiting for a core {main[1] / 1e6:.0f} ms; {others or 'no other thread ran'}",
            flush=True,
        )


class SlowCallbacks:
    """Report slow event-loop callbacks with the widgets they rendered."""

    def __init__(self, threshold_s: float = 0.02) -> None:
        self.threshold = threshold_s
        self.rendered: dict[str, float] = {}
        self.layouts: collections.Counter[str] = collections.Counter()
        self.counting = False

    def install(self) -> None:
        from textual.screen import Screen
        from textual.widget import Widget

        diag = self
        run_handle = asyncio.events.Handle._run
        render_lines = Widget.render_lines
        refresh = Widget.refresh
        refresh_bindings = Screen.refresh_bindings

        def timed_run(handle: Any) -> None:
            diag.rendered = {}
            wall, cpu = time.perf_counter(), time.thread_time()
            run_handle(handle)
            wall = time.perf_counter() - wall
            if wall < diag.threshold:
                return
            cpu = time.thread_time() - cpu
            callback = getattr(handle, "_callback", None)
            owner = getattr(callback, "__self__", None)
            what = owner.get_coro() if hasattr(owner, "get_coro") else callback
            widgets = ", ".join(
                f"{k} {v * 1000:.1f}"
                for k, v in sorted(diag.rendered.items(), key=lambda kv: -kv[1])[:6]
            )
            print(
                f"   slow {wall * 1000:.0f} ms (cpu {cpu * 1000:.0f}) {str(what)[:70]} {widgets}",
                flush=True,
            )

        def timed_render_lines(widget: Any, crop: Any) -> Any:
            start = time.thread_time()
            lines = render_lines(widget, crop)
            key = f"{type(widget).__name__}#{widget.id}"
            diag.rendered[key] = diag.rendered.get(key, 0.0) + time.thread_time() - start
            return lines

        def counted_refresh(widget: Any, *args: Any, **kwargs: Any) -> Any:
            if diag.counting and (kwargs.get("layout") or kwargs.get("recompose")):
                caller = traceback.extract_stack(limit=3)[0]
                where = f"{caller.filename.rsplit('/', 1)[-1]}:{caller.lineno} {caller.name}"
                diag.layouts[f"{type(widget).__name__}#{widget.id} <- {where}"] += 1
            return refresh(widget, *args, **kwargs)

        def counted_refresh_bindings(screen: Any) -> None:
            if diag.counting:
                caller = traceback.extract_stack(limit=3)[0]
                where = f"{caller.filename.rsplit('/', 1)[-1]}:{caller.lineno} {caller.name}"
                diag.layouts[f"footer rebuild <- {where}"] += 1
            refresh_bindings(screen)

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        Widget.render_lines = timed_render_lines  # type: ignore[method-assign]
        Widget.refresh = counted_refresh  # type: ignore[method-assign]
        Screen.refresh_bindings = counted_refresh_bindings  # type: ignore[method-assign]

    def report_layouts(self) -> None:
        print("layout refreshes and footer rebuilds under load, by origin:")
        for where, n in self.layouts.most_common(12):
            print(f"   {n:4d}  {where}")
