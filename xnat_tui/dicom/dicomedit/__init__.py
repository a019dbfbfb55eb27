"""DicomEdit 6 subset: parse XNAT anonymization scripts once, apply them to many files.

Public API (used by the packer, the sandbox, the CLI and the TUI)::

    script = Script.parse(text, "site")            # or Script.load(path); ScriptError if rejected
    anon = Anonymizer([site, project], {"project": "P"})
    data = anon.anonymize_file(path, {"subject": "S", "session": "E"})  # bytes, file untouched
    anon.apply(ds, variables)                      # in place, on a pydicom Dataset
    required_variables([site, project])            # what to ask the user for
    basic_profile_script(retain_dates=..., retain_uids=..., retain_device=...)
    preview_file(anon, path, variables)            # list[TagChange]
"""

from __future__ import annotations

from .anonymizer import Anonymizer, encode
from .burned_in import BurnedInVerdict, burned_in_verdict
from .errors import AnonymizationError, ScriptError
from .functions import hash_uid, java_format, parse_lookup_table
from .preview import TagChange, diff_datasets, preview_file
from .profiles import (
    PROFILES,
    basic_profile_script,
    basic_profile_text,
    scripts_for_profile,
    server_scripts,
)
from .script import BUILTIN_VARIABLES, CodeItem, RequiredVariable, Script, required_variables

__all__ = [
    "BUILTIN_VARIABLES",
    "PROFILES",
    "AnonymizationError",
    "Anonymizer",
    "BurnedInVerdict",
    "CodeItem",
    "RequiredVariable",
    "Script",
    "ScriptError",
    "TagChange",
    "basic_profile_script",
    "basic_profile_text",
    "burned_in_verdict",
    "diff_datasets",
    "encode",
    "hash_uid",
    "java_format",
    "parse_lookup_table",
    "preview_file",
    "required_variables",
    "scripts_for_profile",
    "server_scripts",
]
