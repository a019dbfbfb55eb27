"""Local DICOM: scanning, model, checks, routing, anonymization (no Textual).

Entry points (import the module you need; this package imports nothing heavy):

- ``xnat_tui.dicom.model``: FileRef, Scan, Session, Problem, ProblemKind,
  RoutingProposal, ScanProgress, ScanBatch, ScanSummary.
- ``xnat_tui.dicom.scan``: ``scan(paths, ...)`` (generator of ScanBatch, then one
  ScanSummary), ``scan_all``, ``scan_async`` (async iterator for event loops),
  ``ScanThread`` (callback API).
- ``xnat_tui.dicom.routing``: ``propose(fields, patterns)``, ``xnat_assignment``.
- ``xnat_tui.dicom.synthetic``: synthetic DICOM for demos, tests and benchmarks.
- ``xnat_tui.dicom.dicomedit``: the DicomEdit subset and built-in profiles.
"""
