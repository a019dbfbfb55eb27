from xnat_tui.cli import entry

entry()
