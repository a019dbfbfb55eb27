"""The application layer: what the TUI and the command line both do, written once.

Label rules and templates, the workbench of sessions and their states, target
classification, and the upload session that builds planner, anonymizers and engine.
Textual-free and strictly typed: ``ui/`` and ``commands/`` only present what it decides.
"""
