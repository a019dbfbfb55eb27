"""Errors of the DicomEdit engine: rejected scripts and failed files.

A script that falls outside the supported subset is rejected as a whole, before any
file is read, so the message always names the script, the line and the column.
"""

from __future__ import annotations


class ScriptError(Exception):
    """The script cannot be run by this client (syntax, unsupported feature, version)."""

    def __init__(self, message: str, *, script: str = "", line: int = 0, column: int = 0) -> None:
        self.message = message
        self.script = script
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.script or "<script>"
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return f"{where}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default pickling, and the
        # packer ships errors back from a process pool.
        return (_rebuild_script_error, (self.message, self.script, self.line, self.column))


def _rebuild_script_error(message: str, script: str, line: int, column: int) -> ScriptError:
    return ScriptError(message, script=script, line=line, column=column)


class AnonymizationError(Exception):
    """A script failed on one file (null into lowercase, bad substring range...).

    XNAT fails that file the same way; the other files are unaffected.
    """

    def __init__(self, message: str, *, script: str = "", line: int = 0) -> None:
        self.message = message
        self.script = script
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.script or "<script>"
        if self.line:
            where += f":{self.line}"
        return f"{where}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_anon_error, (self.message, self.script, self.line))


def _rebuild_anon_error(message: str, script: str, line: int) -> AnonymizationError:
    return AnonymizationError(message, script=script, line=line)
