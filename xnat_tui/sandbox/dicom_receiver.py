"""The sandbox's DICOM C-STORE receiver (xnat-api.md §8, xnat-api-2.md §D), on
pynetdicom's SCP.

Like XNAT's receiver: AE ``XNAT`` (configurable), Verification and the storage classes
in the little/big endian and JPEG family syntaxes (never Deflated), an optional
allow-list of calling AE titles (others get A-ASSOCIATE-RJ "calling AE not
recognised"), an unknown called AE title rejected. Each instance is filed before the
C-STORE response, through the same path as the gradual-DICOM REST import: XNAT's
identifier chain with this receiver's custom routing rules first
(``dicom.routing.identify``), the site and project series import filters, the site
anonymization script; a project that is not found files it as Unassigned. An instance
the filters drop is answered 0x0000, as XNAT does. The prearchive session is built
(and auto-archived by the project's setting) after the idle time, by the sandbox's
auto-build pass.

Statuses: 0x0000 stored (or dropped by a filter), 0xC000 an object XNAT cannot take
(no SOP UIDs, unreadable), 0xA700 anything unexpected.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from xnat_tui.dicom.routing import RuleSet
from xnat_tui.sandbox.import_routes import import_context
from xnat_tui.sandbox.importer import (
    ImportError_,
    ImportOptions,
    commit,
    extract_single,
    staging_dir,
)
from xnat_tui.sandbox.keys import STORE
from xnat_tui.sandbox.permissions import User
from xnat_tui.sandbox.prearchive_store import prearchive_of
from xnat_tui.sandbox.writer import WRITER

log = logging.getLogger(__name__)

# DicomSCP.java: what XNAT offers for each storage class (no Deflated, no HTJ2K).
ACCEPTED_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian (first, as XNAT advises)
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.94",
    "1.2.840.10008.1.2.4.95",
    "1.2.840.10008.1.2.4.100",
    "1.2.840.10008.1.2.4.101",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.6.1",
    "1.2.840.10008.1.2.6.2",
)
# receivedFileUser: files are stored as the site admin, so any project ID routes.
RECEIVED_FILE_USER = User(login="admin", admin=True)
RECEIVER_SOURCE = "dicom"


class DicomReceiver:
    """One AE on one port, filing into the sandbox of ``app`` (running on ``loop``)."""

    def __init__(
        self,
        app: web.Application,
        loop: asyncio.AbstractEventLoop,
        *,
        ae_title: str = "XNAT",
        host: str = "127.0.0.1",
        port: int = 0,
        rules: RuleSet | None = None,
        allowed_calling: Iterable[str] = (),
        anonymize: bool = True,
        timeout: float = 60.0,
    ) -> None:
        self.app = app
        self.loop = loop
        self.ae_title = ae_title
        self.host = host
        self.requested_port = port
        self.rules = rules or RuleSet()
        self.allowed_calling = list(allowed_calling)
        self.anonymize = anonymize
        self.timeout = timeout
        self._server: ThreadedAssociationServer | None = None
        self.port = 0

    def start(self) -> DicomReceiver:
        ae = AE(ae_title=self.ae_title)
        # A called AE title other than ours: A-ASSOCIATE-RJ "called AE not recognised".
        ae.require_called_aet = True
        if self.allowed_calling:
            # XNAT's whitelist: others get "calling AE not recognised" (reason 3).
            ae.require_calling_aet = list(self.allowed_calling)
        ae.add_supported_context(Verification, ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is not None:
                ae.add_supported_context(cx.abstract_syntax, list(ACCEPTED_SYNTAXES))
        ae.maximum_associations = 32
        ae.network_timeout = self.timeout
        ae.dimse_timeout = self.timeout
        server = ae.start_server(
            (self.host, self.requested_port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        assert server is not None  # block=False returns the server
        self._server = server
        self.port = int(server.server_address[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # ------------------------------------------------------------------- C-STORE
    def _on_store(self, event: Any) -> Any:
        """pynetdicom's thread: stage the object, file it on the sandbox, answer."""
        store = self.app[STORE]
        staging = staging_dir(store.data_dir)
        staging.mkdir(parents=True, exist_ok=True)
        path = staging / "received.dcm"
        try:
            with path.open("wb") as fh:
                fh.write(b"\0" * 128 + b"DICM")
                write_file_meta_info(fh, event.file_meta, enforce_standard=True)  # type: ignore[arg-type]
                fh.write(event.request.DataSet.getvalue())
            calling = str(event.assoc.requestor.ae_title).strip()
            name = f"{calling}-{uuid.uuid4().hex[:8]}.dcm"
            future = asyncio.run_coroutine_threadsafe(self._file(path, name, staging), self.loop)
            future.result(self.timeout)
        except ImportError_ as exc:
            log.info("C-STORE refused: %s", exc.message)
            return _status(0xC000, exc.message)
        except Exception as exc:  # XNAT: anything unexpected is 0xA700
            log.warning("C-STORE failed: %s", exc)
            return _status(0xA700, str(exc)[:64])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return 0x0000

    async def _file(self, path: Path, name: str, staging: Path) -> None:
        store = self.app[STORE]
        ctx = import_context(store, RECEIVED_FILE_USER)
        ctx.rules = self.rules
        opts = ImportOptions(source=RECEIVER_SOURCE, prevent_anon=not self.anonymize)
        extraction = await asyncio.to_thread(
            extract_single, path, name, ctx, opts, staging / "extract"
        )
        if extraction.failure is not None:
            raise extraction.failure
        if extraction.instances:
            await self.app[WRITER].run(commit, prearchive_of(store), extraction, opts)


def _status(code: int, comment: str) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds
