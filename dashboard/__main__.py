"""Run the command-line interface: `python -m dashboard --help`."""

from dashboard.cli import main

main()
