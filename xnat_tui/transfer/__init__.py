"""Upload engine: journal, planner, packer, scheduler, verifier (no Textual)."""
