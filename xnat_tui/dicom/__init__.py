"""Local DICOM: scanning, model, checks, routing, anonymization (no Textual)."""
