"""Building prearchive sessions, and the background auto-build (xnat-api.md §5.6).

``build(pre, session, ...)`` is what ``action=build``/``commit``, batch ``rebuild`` and
the importer's ``action=commit`` do: status BUILDING, write the session document
``<timestamp>/<folder>.xml`` from the received files, then READY.

The auto-build task wakes periodically; every RECEIVING session idle for
``autobuild_interval`` seconds (XNAT: 5 minutes) with ``prevent_auto_commit`` false
and ``SOURCE`` not ``uploader`` is built and, when its ``autoarchive`` is not Manual
(project code 4/5), archived. ``prearchive_routes.setup`` registers the task through
``app.cleanup_ctx`` so it starts and stops with the server; each pass runs on the
writer thread (``writer.WRITER``) like every other prearchive change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from xnat_tui.sandbox.archiver import (
    ArchiveError,
    ArchiveOptions,
    archive,
    scans_of,
    session_xsi_type,
)
from xnat_tui.sandbox.keys import SETTINGS, STORE
from xnat_tui.sandbox.prearchive_store import PrearchiveStore, PrearcSession, prearchive_of
from xnat_tui.sandbox.store import Store
from xnat_tui.sandbox.writer import WRITER

log = logging.getLogger(__name__)

_XSI_ELEMENT = {
    "xnat:mrSessionData": "xnat:MRSession",
    "xnat:ctSessionData": "xnat:CTSession",
    "xnat:petSessionData": "xnat:PETSession",
}


def session_xml(pre: PrearchiveStore, s: PrearcSession) -> str:
    """The prearchive session document XNAT writes at build time (simplified)."""
    files = pre.files(s.id)
    xsi = session_xsi_type(files)
    element = _XSI_ELEMENT.get(xsi, "xnat:" + xsi.split(":")[1].replace("Data", ""))
    attrs = (
        f"ID={quoteattr('')} project={quoteattr(s.project_label)} "
        f"label={quoteattr(s.name)} UID={quoteattr(s.tag)}"
    )
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<{element} {attrs} xmlns:xnat="http://nrg.wustl.edu/xnat" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
    ]
    if s.scan_date:
        parts.append(f"<xnat:date>{escape(s.scan_date)}</xnat:date>")
    if s.scan_time:
        parts.append(f"<xnat:time>{escape(s.scan_time.split('.')[0])}</xnat:time>")
    if files:
        parts.append(f"<xnat:dcmPatientId>{escape(files[0].patient_id)}</xnat:dcmPatientId>")
        parts.append(f"<xnat:dcmPatientName>{escape(files[0].patient_name)}</xnat:dcmPatientName>")
    if s.subject:
        parts.append(f"<xnat:subject_ID>{escape(s.subject)}</xnat:subject_ID>")
    parts.append("<xnat:scans>")
    for scan in scans_of(files):
        parts.append(
            f"<xnat:scan ID={quoteattr(scan.scan)} type={quoteattr(scan.series_description)} "
            f"UID={quoteattr(scan.series_uid)} xsi:type={quoteattr(scan.xsi_type)}>"
        )
        parts.append(
            f"<xnat:series_description>{escape(scan.series_description)}</xnat:series_description>"
        )
        parts.append(f"<xnat:frames>{len(scan.files)}</xnat:frames>")
        parts.append(
            '<xnat:file label="DICOM" format="DICOM" content="RAW" '
            f'URI="SCANS/{escape(scan.scan)}/DICOM/scan_{escape(scan.scan)}_catalog.xml" '
            f'xsi:type="xnat:resourceCatalog" file_count="{len(scan.files)}"/>'
        )
        parts.append("</xnat:scan>")
    parts.append("</xnat:scans>")
    parts.append(f"</{element}>")
    return "\n".join(parts) + "\n"


def build(
    pre: PrearchiveStore,
    s: PrearcSession,
    *,
    visit: str | None = None,
    protocol: str | None = None,
    timezone: str | None = None,
    source: str | None = None,
) -> PrearcSession:
    """Rebuild the session document and mark the session READY.

    A failure (disk full, unreadable folder) leaves the row in ERROR with the reason in its
    log, as XNAT does, instead of locked in BUILDING where nothing could touch it again."""
    pre.set_status(s.id, "BUILDING")
    try:
        return _build(pre, s, visit, protocol, timezone, source)
    except (OSError, sqlite3.Error) as exc:
        pre.set_status(s.id, "ERROR")
        pre.log(s.id, f"Build failed: {exc}")
        raise


def _build(
    pre: PrearchiveStore,
    s: PrearcSession,
    visit: str | None,
    protocol: str | None,
    timezone: str | None,
    source: str | None,
) -> PrearcSession:
    fields: dict[str, object] = {}
    for key, value in (
        ("visit", visit),
        ("protocol", protocol),
        ("timezone", timezone),
        ("source", source),
    ):
        if value is not None:
            fields[key] = value
    pre.update(s.id, **fields)
    current = pre.get(s.id)
    assert current is not None
    path = pre.xml_path(current)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(session_xml(pre, current), encoding="utf-8")
    pre.update(s.id, status="READY", built=1, lastmod=time.time())
    pre.log(s.id, "Session built")
    done = pre.get(s.id)
    assert done is not None
    return done


def idle_sessions(pre: PrearchiveStore, interval: float, now: float) -> list[PrearcSession]:
    return [
        s
        for s in pre.sessions()
        if s.status == "RECEIVING"
        and not s.prevent_auto_commit
        and s.source != "uploader"
        and now - s.lastmod >= interval
    ]


def run_once(store: Store, interval: float, now: float | None = None) -> list[str]:
    """One auto-build pass; returns the URIs of the sessions it built or archived."""
    pre = prearchive_of(store)
    done: list[str] = []
    for s in idle_sessions(pre, interval, time.time() if now is None else now):
        built = build(pre, s)
        if built.autoarchive != "Manual" and built.project:
            try:
                done.append(
                    archive(store, pre, built, ArchiveOptions(user="admin", allow_merge=True))
                )
                continue
            except ArchiveError as exc:
                log.info("auto-archive of %s failed: %s", built.url, exc.message)
        done.append(built.url)
    return done


async def _loop(app: web.Application) -> None:
    interval = app[SETTINGS].autobuild_interval
    period = max(0.05, min(60.0, interval / 4))
    while True:
        await asyncio.sleep(period)
        try:
            await app[WRITER].run(run_once, app[STORE], interval)
        except Exception:  # the task must outlive one bad session
            log.exception("auto-build pass failed")


async def autobuild_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_loop(app), name="sandbox-autobuild")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def start_autobuild(app: web.Application) -> None:
    """Register the background auto-build with the application's lifecycle."""
    app.cleanup_ctx.append(autobuild_ctx)
