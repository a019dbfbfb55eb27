"""xnat-tui: upload DICOM sessions to XNAT and triage its prearchive from a terminal."""

__version__ = "0.1.0"
