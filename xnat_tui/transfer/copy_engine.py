"""The copy/move engine: the upload engine, reading from a server project instead of disk.

A copy job is journalled, scheduled, sent (one streamed zip per scan to the import
service), committed, resumed and verified by :class:`TransferEngine` itself; this
subclass only changes where bytes come from and what "verified" means:

* every file is fetched from the source project as the packer needs it
  (:mod:`transfer.remote_source`: verified against the listing's size and MD5, a few
  files ahead, nothing on disk), and routing strings are rewritten for the
  destination (:mod:`transfer.copy_routing`) before any anonymization;
* after the upload's own verification (destination against what was sent), each scan
  is compared with the source *as it is now*: file count, sizes and MD5s (counts only
  where anonymization or routing changed the bytes);
* a move deletes the source session (``removeFiles=true``) only after that comparison
  passed, never otherwise. A step ``delete-source start`` is journalled first, so a
  crash during the delete resumes into finishing it, not into copying again.

Job params (``JobRecord.params``): ``mode`` (copy|move), ``source`` (project, subject,
session label, id), ``digests`` (file URI → MD5 as listed when planned), ``scans``
(series UID → source scan ID).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xnat_tui.dicom.routing import PatternLike
from xnat_tui.transfer.anon import AnonymizerSet
from xnat_tui.transfer.copy_routing import DEFAULT_PATTERNS, RoutingRewrite
from xnat_tui.transfer.engine import TransferEngine, TransformFactory, _Run
from xnat_tui.transfer.journal import JobRecord, Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.packer import FileTransform
from xnat_tui.transfer.remote_source import Fetcher, RemoteFiles, install
from xnat_tui.transfer.server import ServerPort, is_retriable
from xnat_tui.transfer.types import JobState
from xnat_tui.xnat.models import RemoteFile

COPY_KINDS = (JobKind.COPY, JobKind.MOVE)


@dataclass(frozen=True)
class SourceFileInfo:
    scan_id: str
    uri: str
    size: int
    digest: str


class SourceReader:
    """What the engine needs of the source server (the XnatClient, in practice)."""

    def __init__(
        self,
        fetch: Fetcher,
        list_source: Callable[[str], Awaitable[list[SourceFileInfo]]],
        list_dest: Callable[[str], Awaitable[dict[str, list[RemoteFile]]]],
        delete_source: Callable[[Mapping[str, str]], Awaitable[bool]],
    ) -> None:
        self.fetch = fetch
        self.list_source = list_source
        self.list_dest = list_dest
        self.delete_source = delete_source


@dataclass
class ScanComparison:
    scan_id: str
    source_files: int
    dest_files: int
    method: str  # md5 | size | count
    passed: bool
    detail: str = ""


class CopyEngine(TransferEngine):
    """Runs COPY and MOVE jobs (see the module docstring)."""

    def __init__(
        self,
        server: ServerPort,
        journal: Journal,
        source: SourceReader,
        *,
        anon_for: TransformFactory | None = None,
        anonymizers: AnonymizerSet | None = None,
        routing_patterns: Sequence[PatternLike] = DEFAULT_PATTERNS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("kinds", COPY_KINDS)
        super().__init__(server, journal, transform_for=self._transform, **kwargs)
        self.source = source
        self.routing_patterns = tuple(routing_patterns)
        # The prepared anonymizers (scripts per destination project): a caller adding a
        # job with a new destination or profile prepares it here first. Closed with us.
        self.anonymizers = anonymizers
        self._anon_for = anon_for or (anonymizers.transform_for if anonymizers else None)
        self._digests: dict[str, str] = {}
        self._remote: RemoteFiles = install()
        self._bound = False
        self._deferring: set[str] = set()
        self._held: dict[str, str] = {}

    async def start(self, *, resume: bool = True) -> list[str]:
        if not self._bound:
            self._remote.bind(self.source.fetch, asyncio.get_running_loop(), self._digests)
            self._bound = True
        return await super().start(resume=resume)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        await super().close()
        self._remote.unbind(self.source.fetch)
        if self.anonymizers is not None:
            await asyncio.to_thread(self.anonymizers.close)

    # ---- where bytes come from ----------------------------------------------------
    def _adopt(self, jid: str, *, force: bool = False) -> bool:
        ok = super()._adopt(jid, force=force)
        if ok:
            params = self._runs[jid].job.params
            self._digests.update({str(k): str(v) for k, v in params.get("digests", {}).items()})
        return ok

    def _transform(self, job: JobRecord) -> FileTransform | None:
        rewrite = RoutingRewrite(job.project, job.subject, job.label, self.routing_patterns)
        anon = self._anon_for(job) if self._anon_for is not None else None

        def transform(path: Path, data: bytes) -> bytes:
            data = rewrite(data)
            return anon(path, data) if anon is not None else data

        # The receipt names the scripts applied (read off the hook, as for uploads).
        transform.script_hashes = list(getattr(anon, "script_hashes", []))  # type: ignore[attr-defined]
        return transform

    # ---- verification against the source, then (a move) the delete -------------------
    def _set_state(self, run: _Run, state: JobState, message: str = "") -> None:
        if state is JobState.VERIFIED and run.job.id in self._deferring:
            self._held[run.job.id] = message  # not finished yet: the source is compared next
            return
        super()._set_state(run, state, message)

    def _release(self, run: _Run) -> None:
        if run.job.id in self._held:
            return
        super()._release(run)

    async def _verify_with_retries(self, run: _Run) -> None:
        jid = run.job.id
        self._deferring.add(jid)
        try:
            await super()._verify_with_retries(run)
        finally:
            self._deferring.discard(jid)
        if jid not in self._held:
            return  # the destination itself failed verification (state set, released)
        dest_message = self._held.pop(jid)
        try:
            await self._against_source(run, dest_message)
        except Exception as exc:
            self._set_state(
                run,
                JobState.FAILED,
                f"could not compare with the source: {exc}; the source was not deleted",
            )
        self._release(run)

    def _delete_started(self, job: JobRecord) -> bool:
        return any(s.step == "delete-source" for s in self.journal.steps(job.id))

    async def _against_source(self, run: _Run, dest_message: str) -> None:
        job = run.job
        move = job.kind is JobKind.MOVE
        if move and self._delete_started(job):
            # A crash during the delete: it was verified before it began; finish it.
            await self._delete(run)
            return
        self._set_state(run, JobState.VERIFYING, "comparing each scan with the source")
        checks = await self._compare_with_retries(run)
        bad = [c for c in checks if not c.passed]
        how = _weakest([c.method for c in checks])
        if bad:
            detail = "; ".join(f"scan {c.scan_id}: {c.detail}" for c in bad)
            tail = "; the source was NOT deleted" if move else ""
            self._set_state(
                run, JobState.FAILED, f"verification against the source failed ({detail}){tail}"
            )
            return
        summary = f"{len(checks)} scan(s) match the source by {how}"
        if not move:
            self._set_state(run, JobState.VERIFIED, f"copied; {summary}; {dest_message}")
            return
        self.journal.log(job.id, "delete-source", "start", summary)
        await self._delete(run, summary)

    async def _delete(self, run: _Run, summary: str = "verified earlier") -> None:
        job = run.job
        src = job.params.get("source", {})
        self._set_state(run, JobState.VERIFYING, "deleting the source session")
        where = f"{src.get('project', '')}/{src.get('session', '')}"
        try:
            existed = await self.source.delete_source(src)
        except Exception as exc:
            self.journal.log(job.id, "delete-source", "fail", str(exc))
            self._set_state(
                run,
                JobState.FAILED,
                f"copied and verified ({summary}), but the source {where} could not be "
                f"deleted: {exc}; the copy is at {job.result_uri or job.prearchive_uri}",
            )
            return
        self.journal.log(job.id, "delete-source", "end", "deleted" if existed else "already gone")
        # Said as it went: a source found gone (a delete finished before a crash) was not
        # deleted now.
        done = "deleted" if existed else "was already gone"
        self._set_state(
            run,
            JobState.VERIFIED,
            f"moved; {summary}; source {where} {done}; "
            f"now at {job.result_uri or job.prearchive_uri}",
        )

    async def _compare_with_retries(self, run: _Run) -> list[ScanComparison]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._compare(run)
            except Exception as exc:
                if is_retriable(exc) and attempt < self.retry_policy.attempts:
                    await self.clock.sleep(self.retry_policy.delay(attempt))
                    continue
                raise

    async def _compare(self, run: _Run) -> list[ScanComparison]:
        job = run.job
        params = job.params
        src = params.get("source", {})
        planned: Mapping[str, str] = params.get("digests", {})
        scan_of: Mapping[str, str] = params.get("scans", {})
        now = await self.source.list_source(str(src.get("id", "")))
        by_scan: dict[str, list[SourceFileInfo]] = {}
        for f in now:
            by_scan.setdefault(f.scan_id, []).append(f)
        dest = await self.source.list_dest(job.result_uri or job.prearchive_uri)
        dest_scan = {c.series_uid: c.scan_id for c in (run.receipt.scans if run.receipt else [])}
        out: list[ScanComparison] = []
        for uid in run.order:
            s = run.series[uid]
            scan_id = scan_of.get(uid, str(s.number or ""))
            have = by_scan.get(scan_id, [])
            files = dest.get(dest_scan.get(uid, scan_id), [])
            planned_uris = {u for u in planned if f"/scans/{scan_id}/" in u}
            if {f.uri for f in have} != planned_uris or any(
                planned.get(f.uri, f.digest) != f.digest for f in have
            ):
                out.append(
                    ScanComparison(
                        scan_id,
                        len(have),
                        len(files),
                        "count",
                        False,
                        "the source changed since it was copied",
                    )  # fmt: skip
                )
                continue
            rewritten = bool(params.get("rewritten_on_arrival"))
            out.append(_compare_scan(scan_id, have, files, s.manifest, rewritten=rewritten))
        return out


def _compare_scan(
    scan_id: str,
    have: list[SourceFileInfo],
    files: list[RemoteFile],
    manifest: list[Any],
    *,
    rewritten: bool = False,
) -> ScanComparison:
    """``rewritten``: the server may rewrite what arrives in the destination (its
    project's or the site's anonymization script)."""
    n_src, n_dst = len(have), len(files)
    if n_src != n_dst:
        return ScanComparison(
            scan_id, n_src, n_dst, "count", False, f"{n_src} file(s) in the source, {n_dst} copied"
        )
    sent = Counter(m.md5 for m in manifest)
    unchanged = sent == Counter(f.digest for f in have) and all(f.digest for f in have)
    if not unchanged:
        # Anonymization or routing rewrote the bytes: the destination was checked
        # against what was sent; here the count is what can match.
        return ScanComparison(scan_id, n_src, n_dst, "count", True)
    dest_digests = [f.digest for f in files if f.digest]
    if len(dest_digests) == n_dst:
        ok = Counter(dest_digests) == Counter(f.digest for f in have)
        if ok or not rewritten:
            return ScanComparison(
                scan_id, n_src, n_dst, "md5", ok, "" if ok else "MD5s differ from the source"
            )
    if rewritten:
        # A script rewrote them on arrival (files it left alone matched by MD5 above):
        # the count is what can match.
        return ScanComparison(scan_id, n_src, n_dst, "count", True)
    ok = Counter(f.size for f in files) == Counter(f.size for f in have)
    return ScanComparison(
        scan_id, n_src, n_dst, "size", ok, "" if ok else "file sizes differ from the source"
    )


def _weakest(methods: list[str]) -> str:
    for m in ("count", "size", "md5"):
        if m in methods:
            return m
    return "md5"
