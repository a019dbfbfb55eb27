import sys

from xnat_tui.cli import main

sys.exit(main())
