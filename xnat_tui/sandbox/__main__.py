"""``python -m xnat_tui.sandbox`` = ``xnat-tui sandbox serve``."""

from __future__ import annotations

import sys

from xnat_tui.cli import main

if __name__ == "__main__":
    sys.exit(main(["sandbox", "serve", *sys.argv[1:]]))
