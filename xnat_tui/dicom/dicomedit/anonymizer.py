"""Applying a list of scripts to files: the entry point of the packer and the CLI.

An :class:`Anonymizer` is built once (scripts parsed, checked) and pickled to the
workers of the packer's process pool. It is deterministic: the same input file and
variables always give the same output bytes, so a retried upload re-sends identical
bytes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from .errors import AnonymizationError, ScriptError
from .evaluator import Run
from .script import CodeItem, Script

DEIDENTIFICATION_METHOD_CODE_SEQUENCE = 0x00120064


class Anonymizer:
    """Scripts applied in order (site first, then project) with fixed variables.

    ``variables`` are merged under the per-call ones (per-call wins), so one instance
    can serve a whole job while subject/session change per session.
    ``lookup`` is the DicomEdit lookup table for ``lookup[]`` (key -> value -> replacement).
    """

    def __init__(
        self,
        scripts: Sequence[Script],
        variables: Mapping[str, str] | None = None,
        *,
        lookup: Mapping[str, Mapping[str, str]] | None = None,
        add_method_codes: bool = True,
    ) -> None:
        self.scripts: tuple[Script, ...] = tuple(scripts)
        self.variables: dict[str, str] = dict(variables or {})
        self.lookup = lookup
        self.add_method_codes = add_method_codes
        for script in self.scripts:
            if script.uses_lookup and lookup is None:
                raise ScriptError(
                    "the script uses lookup[] but no lookup table was given", script=script.name
                )

    @property
    def script_hashes(self) -> list[str]:
        """SHA-256 of each script's text, in application order (for the job receipt)."""
        return [s.sha256 for s in self.scripts]

    @property
    def is_identity(self) -> bool:
        return not self.scripts

    def apply(self, ds: Dataset, variables: Mapping[str, str] | None = None) -> None:
        """Anonymize ``ds`` in place, or raise AnonymizationError naming script and line."""
        if not self.scripts:
            return
        values: dict[str, str | None] = {}
        for script in self.scripts:
            # DicomEdit registers described variables up front: unset, they read as null.
            values.update(dict.fromkeys(script.descriptions))
        values.update(self.variables)
        if variables:
            values.update(variables)
        # Seed of newUID[]: the file's own identity, so outputs are reproducible.
        seed = str(ds.get("SOPInstanceUID", "") or "")
        with warnings.catch_warnings():
            # pydicom warns about values that stretch a VR (e.g. long SH); DicomEdit writes
            # them as given, and the warnings would flood a worker's stderr.
            warnings.simplefilter("ignore")
            for script in self.scripts:
                run = Run(
                    ds,
                    script=script.name,
                    script_sha=script.sha256,
                    variables=values,
                    lookup=self.lookup,
                    uid_seed=seed,
                )
                run.execute(script.program)
                if self.add_method_codes:
                    _add_method_codes(ds, script.method_codes)
            meta = getattr(ds, "file_meta", None)
            sop = ds.get("SOPInstanceUID")
            if meta is not None and sop is not None and "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = sop

    def anonymize_dataset_bytes(
        self, ds: Dataset, variables: Mapping[str, str] | None = None
    ) -> bytes:
        self.apply(ds, variables)
        try:
            return encode(ds)
        except Exception as exc:  # a value the scripts set that pydicom cannot write
            raise AnonymizationError(
                f"cannot encode the anonymized file: {type(exc).__name__}: {exc}",
                script=self.scripts[-1].name if self.scripts else "",
            ) from exc

    def anonymize_bytes(self, data: bytes, variables: Mapping[str, str] | None = None) -> bytes:
        ds = dcmread(io.BytesIO(data), force=True)
        return self.anonymize_dataset_bytes(ds, variables)

    def anonymize_file(self, path: str | Path, variables: Mapping[str, str] | None = None) -> bytes:
        """Read ``path`` (never modified), anonymize in memory, return the encoded file."""
        ds = dcmread(path, force=True)
        return self.anonymize_dataset_bytes(ds, variables)


def encode(ds: Dataset) -> bytes:
    """The dataset as a file, in its original transfer syntax and layout.

    Byte-identical to ``dcmwrite(..., enforce_file_format=False)``, minus its defensive
    deep copy of the meta header (a third of the encoding time of a small file): the
    dataset is ours to change.
    """
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if (
        meta is None
        or tsyntax is None
        or tsyntax.is_private
        or not tsyntax.is_transfer_syntax
        or tsyntax == DeflatedExplicitVRLittleEndian
        or any(t >> 16 in (0, 2) for t in ds._dict)
    ):
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dcmwrite(buf, ds, enforce_file_format=False)
        return buf.getvalue()
    preamble = getattr(ds, "preamble", None)
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = tsyntax.is_compressed
    fp = DicomBytesIO()
    fp.is_implicit_VR = tsyntax.is_implicit_VR
    fp.is_little_endian = tsyntax.is_little_endian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if preamble:
            fp.write(preamble)
            fp.write(b"DICM")
        if meta:
            write_file_meta_info(fp, meta, enforce_standard=False)
        write_dataset(fp, ds)
    return fp.getvalue()


def _add_method_codes(ds: Dataset, codes: Sequence[CodeItem]) -> None:
    if not codes:
        return
    if DEIDENTIFICATION_METHOD_CODE_SEQUENCE in ds._dict:
        elem = ds[DEIDENTIFICATION_METHOD_CODE_SEQUENCE]
        if elem.VR != "SQ":
            del ds[DEIDENTIFICATION_METHOD_CODE_SEQUENCE]
    if DEIDENTIFICATION_METHOD_CODE_SEQUENCE not in ds._dict:
        ds.add_new(DEIDENTIFICATION_METHOD_CODE_SEQUENCE, "SQ", DicomSequence())
    seq = ds[DEIDENTIFICATION_METHOD_CODE_SEQUENCE]
    if seq.value is None:
        seq.value = DicomSequence()
    for code in codes:
        # Tags, not keywords: keyword lookups cost more than the rest of a small script.
        item = Dataset()
        item.add_new(0x00080100, "SH", code.value)  # CodeValue
        item.add_new(0x00080102, "SH", code.scheme)  # CodingSchemeDesignator
        if code.scheme_version:
            item.add_new(0x00080103, "SH", code.scheme_version)  # CodingSchemeVersion
        item.add_new(0x00080104, "LO", code.meaning)  # CodeMeaning
        seq.value.append(item)
